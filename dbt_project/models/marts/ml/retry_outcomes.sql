-- Grain: one row per failed payment attempt that was retried (the next attempt on the same
-- invoice): what was known at the failure (decline code, method, issuer, amount, IST day of
-- month and hour, attempt number), the delay to the retry and whether the retry succeeded.
-- Training data for the retry-timing model.
with attempts as (

    select
        attempts.payment_attempt_id,
        attempts.invoice_id,
        attempts.attempt_number,
        attempts.status,
        attempts.amount_minor,
        attempts.currency,
        attempts.decline_code,
        attempts.gateway,
        attempts.gateway_payment_id,
        attempts.created_at,
        lead(attempts.status) over (
            partition by attempts.invoice_id order by attempts.attempt_number
        ) as next_status,
        lead(attempts.created_at) over (
            partition by attempts.invoice_id order by attempts.attempt_number
        ) as next_attempt_at
    from {{ ref('stg_ledger__payment_attempts') }} as attempts
    where attempts.status in ('succeeded', 'failed')

),

payments as (

    select gateway, gateway_payment_id, method, issuer
    from {{ ref('fct_payments') }}

),

final as (

    select
        attempts.payment_attempt_id,
        attempts.invoice_id,
        attempts.created_at as failed_at,
        coalesce(attempts.decline_code, 'unknown') as decline_code,
        coalesce(payments.method, 'unknown') as method,
        coalesce(payments.issuer, 'unknown') as issuer,
        attempts.amount_minor,
        attempts.currency,
        -- India has no daylight saving: IST is UTC + 5:30 all year.
        cast(extract(day from {{ dbt.dateadd('minute', 330, 'attempts.created_at') }}) as integer)
            as day_of_month,
        cast(extract(hour from {{ dbt.dateadd('minute', 330, 'attempts.created_at') }}) as integer)
            as hour,
        attempts.attempt_number,
        cast({{ seconds_between('attempts.created_at', 'attempts.next_attempt_at') }}
            as double) / 3600.0 as offset_hours,
        case when attempts.next_status = 'succeeded' then 1 else 0 end as succeeded
    from attempts
    left join payments
        on attempts.gateway = payments.gateway
        and attempts.gateway_payment_id = payments.gateway_payment_id
    where attempts.status = 'failed' and attempts.next_attempt_at is not null

)

select * from final
