-- Grain: one row per dispute at a gateway, at its latest state.
with source as (

    select * from {{ source('raw', 'ledger_payments_disputes') }}

),

final as (

    select
        gateway,
        gateway_dispute_id,
        gateway_payment_id,
        cast(invoice_id as bigint) as invoice_id,
        cast(amount_minor as bigint) as amount_minor,
        upper(currency) as currency,
        reason,
        status as dispute_status,
        cast(funds_withdrawn_minor as bigint) as funds_withdrawn_minor,
        cast(opened_at as timestamp) as opened_at,
        cast(closed_at as timestamp) as closed_at,
        cast(last_event_at as timestamp) as last_event_at,
        cast(updated_at as timestamp) as updated_at
    from source

)

select * from final
