-- Grain: one row per gateway event the ledger processed (the raw body stays in the ledger).
with source as (

    select * from {{ source('raw', 'ledger_payments_gateway_events') }}

),

final as (

    select
        gateway,
        event_id,
        event_type,
        status as processing_status,
        detail,
        gateway_payment_id,
        cast(event_created_at as timestamp) as event_created_at,
        cast(tries as integer) as tries,
        cast(first_seen_at as timestamp) as first_seen_at,
        cast(updated_at as timestamp) as updated_at
    from source

)

select * from final
