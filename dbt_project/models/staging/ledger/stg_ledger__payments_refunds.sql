-- Grain: one row per refund made at a gateway.
with source as (

    select * from {{ source('raw', 'ledger_payments_refunds') }}

),

final as (

    select
        cast(id as bigint) as refund_id,
        cast(invoice_id as bigint) as invoice_id,
        gateway,
        gateway_payment_id,
        gateway_refund_id,
        cast(amount_minor as bigint) as amount_minor,
        upper(currency) as currency,
        cast(credit_note_id as bigint) as credit_note_id,
        cast(created_at as timestamp) as created_at
    from source

)

select * from final
