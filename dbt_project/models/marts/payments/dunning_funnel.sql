-- Grain: one row per month of the first failed attempt and currency: how many invoices
-- entered dunning and where they ended (paid on retry 2, 3, 4+, uncollectible/void, open).
with attempts as (

    select * from {{ ref('stg_ledger__payment_attempts') }}

),

invoices as (

    select invoice_id, status from {{ ref('stg_ledger__invoices') }}

),

entered as (

    select
        invoice_id,
        min(currency) as currency,
        min(case when status = 'failed' then created_at end) as first_failed_at,
        min(case when status = 'succeeded' then attempt_number end) as paid_on_attempt,
        max(attempt_number) as attempts_made
    from attempts
    group by invoice_id
    having min(case when status = 'failed' then created_at end) is not null

),

final as (

    select
        {{ month_of('entered.first_failed_at') }} as month,
        entered.currency,
        count(*) as invoices_in_dunning,
        sum(case when entered.paid_on_attempt = 2 then 1 else 0 end) as recovered_attempt_2,
        sum(case when entered.paid_on_attempt = 3 then 1 else 0 end) as recovered_attempt_3,
        sum(case when entered.paid_on_attempt >= 4 then 1 else 0 end) as recovered_attempt_4_plus,
        sum(case when entered.paid_on_attempt is not null then 1 else 0 end) as recovered,
        sum(case when entered.paid_on_attempt is null
                  and invoices.status in ('uncollectible', 'void') then 1 else 0 end) as lost,
        sum(case when entered.paid_on_attempt is null
                  and invoices.status = 'open' then 1 else 0 end) as still_open,
        {{ safe_ratio('sum(case when entered.paid_on_attempt is not null then 1 else 0 end)',
                      'count(*)') }} as recovery_rate
    from entered
    left join invoices on entered.invoice_id = invoices.invoice_id
    group by 1, 2

)

select * from final
