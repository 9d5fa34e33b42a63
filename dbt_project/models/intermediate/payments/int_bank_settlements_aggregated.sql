-- Grain: one row per gateway payment id seen in bank settlement files (payments only:
-- positive gross) up to as_of. More than one line for a payment means the bank credited it
-- twice.
with lines as (

    select * from {{ ref('stg_bank__settlements') }}
    where gross_minor > 0
      -- point in time: a replay for an earlier as_of must not see credits that came later
      and cast(settled_at as date) <= {{ as_of_date() }}

),

final as (

    select
        gateway_payment_id,
        min(settlement_id) as settlement_id,
        min(utr) as utr,
        min(currency) as currency,
        max(currency) as max_currency,
        sum(gross_minor) as settled_gross_minor,
        min(gross_minor) as first_gross_minor,
        sum(fee_minor) as settled_fee_minor,
        sum(fee_tax_minor) as settled_fee_tax_minor,
        sum(net_minor) as settled_net_minor,
        min(settled_at) as settled_at,
        count(*) as bank_line_count
    from lines
    group by gateway_payment_id

)

select * from final
