-- Grain: one row per dunning notification (each step of each dunning process, once).
with source as (

    select * from {{ source('raw', 'ledger_payments_dunning_notifications') }}

),

final as (

    select
        cast(id as bigint) as dunning_notification_id,
        cast(invoice_id as bigint) as invoice_id,
        cast(customer_id as bigint) as customer_id,
        kind as notification_kind,
        template_key,
        cast(due_at as timestamp) as due_at,
        cast(next_retry_at as timestamp) as next_retry_at,
        cast(amount_minor as bigint) as amount_minor,
        upper(currency) as currency,
        cast(mail_delivery_id as bigint) as mail_delivery_id,
        cast(created_at as timestamp) as created_at
    from source

)

select * from final
