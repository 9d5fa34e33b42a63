-- Grain: one row per month of the first attempt and currency. Stripe's definitions:
-- failure rate = first (recurring) attempts that failed / first attempts;
-- recovery rate = invoices whose first attempt failed and that a later attempt paid /
-- invoices whose first attempt failed.
with attempts as (

    select * from {{ ref('stg_ledger__payment_attempts') }}
    where status in ('succeeded', 'failed')

),

per_invoice as (

    select
        invoice_id,
        min(currency) as currency,
        min(case when attempt_number = 1 then created_at end) as first_attempt_at,
        max(case when attempt_number = 1 and status = 'failed' then 1 else 0 end)
            as first_failed,
        max(case when attempt_number > 1 and status = 'succeeded' then 1 else 0 end)
            as recovered,
        sum(case when attempt_number > 1 then 1 else 0 end) as retries,
        sum(case when attempt_number > 1 and status = 'succeeded' then amount_minor else 0 end)
            as recovered_amount_minor
    from attempts
    group by invoice_id

),

final as (

    select
        {{ month_of('first_attempt_at') }} as month,
        currency,
        count(*) as first_attempts,
        sum(first_failed) as first_attempt_failures,
        sum(case when first_failed = 1 then recovered else 0 end) as recovered_invoices,
        sum(case when first_failed = 1 then recovered_amount_minor else 0 end)
            as recovered_amount_minor,
        sum(retries) as retry_attempts,
        {{ safe_ratio('sum(first_failed)', 'count(*)') }} as failure_rate,
        {{ safe_ratio('sum(case when first_failed = 1 then recovered else 0 end)',
                      'sum(first_failed)') }} as recovery_rate
    from per_invoice
    where first_attempt_at is not null
    group by 1, 2

)

select * from final
