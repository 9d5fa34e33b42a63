with source as (

    select * from {{ source('raw', 'ledger_payment_attempts') }}

),

final as (

    select
        cast(id as bigint) as payment_attempt_id,
        cast(invoice_id as bigint) as invoice_id,
        cast(attempt_number as integer) as attempt_number,
        idempotency_key,
        status,
        gateway,
        gateway_payment_id,
        cast(amount_minor as bigint) as amount_minor,
        upper(currency) as currency,
        decline_code,
        cast(created_at as timestamp) as created_at,
        cast(finalized_at as timestamp) as finalized_at
    from source

)

select * from final
