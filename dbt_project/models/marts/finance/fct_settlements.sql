-- Grain: one row per settlement (bank credit, identified by settlement id and UTR).
-- net = gross - fee - GST on fee - refunds + adjustments.
with lines as (

    select * from {{ ref('stg_bank__settlements') }}

),

refunds as (

    select refund_id from {{ ref('stg_gateway__refunds') }}

),

classified as (

    select
        lines.*,
        case
            when lines.gross_minor >= 0 then 'payment'
            when refunds.refund_id is not null then 'refund'
            else 'adjustment'
        end as line_type
    from lines
    left join refunds on lines.gateway_payment_id = refunds.refund_id

),

gateway_settlements as (

    select settlement_id, gateway, net_minor as gateway_net_minor
    from {{ ref('stg_gateway__settlements') }}

),

final as (

    select
        classified.settlement_id,
        min(classified.utr) as utr,
        min(gateway_settlements.gateway) as gateway,
        min(classified.currency) as currency,
        max(classified.settled_at) as settled_at,
        sum(case when line_type = 'payment' then 1 else 0 end) as payment_count,
        sum(case when line_type = 'payment' then gross_minor else 0 end) as gross_minor,
        sum(fee_minor) as fee_minor,
        sum(fee_tax_minor) as fee_tax_minor,
        sum(case when line_type = 'refund' then -gross_minor else 0 end) as refunds_minor,
        sum(case when line_type = 'adjustment' then gross_minor else 0 end) as adjustments_minor,
        sum(net_minor) as net_minor,
        min(gateway_settlements.gateway_net_minor) as gateway_net_minor
    from classified
    left join gateway_settlements
        on classified.settlement_id = gateway_settlements.settlement_id
    group by classified.settlement_id

)

select * from final
