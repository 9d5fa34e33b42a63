-- Ledger payment attempts x gateway charges x bank settlement lines, matched on the gateway
-- payment id. One row per money movement seen by any of the three up to as_of (a replay for
-- an earlier day sees only what was known then, so a late settlement shows as overdue).
with ledger as (

    select
        gateway_payment_id,
        min(payment_attempt_id) as ledger_payment_id,
        min(amount_minor) as amount_minor,
        min(currency) as currency,
        min(created_at) as created_at,
        count(*) as ledger_count
    from {{ ref('stg_ledger__payment_attempts') }}
    where status = 'succeeded' and gateway_payment_id is not null
        and cast(created_at as date) <= {{ as_of_date() }}
    group by gateway_payment_id

),

gateway as (

    select
        gateway_payment_id,
        gateway,
        amount_minor,
        currency,
        fee_minor,
        fee_tax_minor,
        created_at,
        -- a second successful charge for the same invoice is a double charge
        case when invoice_id is null then 1
             else row_number() over (
                 partition by gateway, invoice_id order by created_at, gateway_payment_id)
        end as invoice_charge_rank
    from {{ ref('fct_payments') }}
    where status = 'succeeded' and cast(created_at as date) <= {{ as_of_date() }}

),

bank as (

    select * from {{ ref('int_bank_settlements_aggregated') }}

),

calendar as (

    select calendar_date, working_day_seq from {{ ref('int_bank_days_numbered') }}

),

joined as (

    select
        coalesce(ledger.gateway_payment_id, gateway.gateway_payment_id, bank.gateway_payment_id)
            as recon_key,
        ledger.ledger_payment_id,
        gateway.gateway,
        coalesce(ledger.gateway_payment_id, gateway.gateway_payment_id, bank.gateway_payment_id)
            as gateway_payment_id,
        bank.settlement_id,
        bank.utr,
        ledger.amount_minor as ledger_amount_minor,
        gateway.amount_minor as gateway_amount_minor,
        bank.settled_gross_minor as settled_amount_minor,
        gateway.fee_minor as gateway_fee_minor,
        bank.settled_fee_minor,
        gateway.fee_tax_minor as gateway_fee_tax_minor,
        bank.settled_fee_tax_minor,
        bank.settled_net_minor,
        ledger.currency as ledger_currency,
        gateway.currency as gateway_currency,
        bank.currency as bank_currency,
        bank.max_currency as bank_max_currency,
        coalesce(ledger.ledger_count, 0) as ledger_count,
        coalesce(bank.bank_line_count, 0) as bank_line_count,
        coalesce(gateway.invoice_charge_rank, 1) as invoice_charge_rank,
        coalesce(gateway.created_at, ledger.created_at, bank.settled_at) as created_at,
        bank.settled_at
    -- full outer joins, not a union of keys: one pass over each side at scale
    from ledger
    full outer join gateway on ledger.gateway_payment_id = gateway.gateway_payment_id
    full outer join bank
        on coalesce(ledger.gateway_payment_id, gateway.gateway_payment_id)
            = bank.gateway_payment_id

),

aged as (

    select
        joined.*,
        created_day.working_day_seq as created_working_day_seq,
        as_of_day.working_day_seq as as_of_working_day_seq
    from joined
    left join calendar as created_day
        on cast(joined.created_at as date) = created_day.calendar_date
    cross join (
        select working_day_seq from calendar where calendar_date = {{ as_of_date() }}
    ) as as_of_day

),

final as (

    select
        recon_key,
        ledger_payment_id,
        gateway,
        gateway_payment_id,
        settlement_id,
        utr,
        ledger_amount_minor,
        gateway_amount_minor,
        settled_amount_minor,
        gateway_fee_minor,
        settled_fee_minor,
        gateway_fee_tax_minor,
        settled_fee_tax_minor,
        coalesce(gateway_currency, ledger_currency, bank_currency) as currency,
        created_at,
        settled_at,
        settled_at is not null as is_settled,
        case
            when bank_line_count > 1 or invoice_charge_rank > 1 or ledger_count > 1
                then 'duplicate'
            when ledger_payment_id is not null and gateway_amount_minor is null
                then 'missing_in_gateway'
            when ledger_payment_id is null
                then 'missing_in_ledger'
            when ledger_currency <> gateway_currency
                or bank_currency <> gateway_currency
                or bank_max_currency <> bank_currency
                then 'currency_mismatch'
            -- a short payment: the bank credited less than gross - fee - GST on fee
            when ledger_amount_minor <> gateway_amount_minor
                or settled_amount_minor <> gateway_amount_minor
                or settled_net_minor
                    <> settled_amount_minor - settled_fee_minor - settled_fee_tax_minor
                then 'amount_mismatch'
            when settled_fee_minor <> gateway_fee_minor
                or settled_fee_tax_minor <> gateway_fee_tax_minor
                then 'fee_mismatch'
            when settled_at is null
                and as_of_working_day_seq > created_working_day_seq + {{ var('settlement_sla_days') }}
                then 'unsettled_overdue'
            else 'matched'
        end as status,
        {{ dbt.datediff('cast(created_at as date)',
                        'coalesce(cast(settled_at as date), ' ~ as_of_date() ~ ')', 'day') }}
            as age_days
    from aged

)

select * from final
