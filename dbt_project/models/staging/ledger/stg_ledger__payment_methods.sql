-- Grain: one row per saved payment method; the gateway token stays in the ledger.
with source as (

    select * from {{ source('raw', 'ledger_payment_methods') }}

),

final as (

    select
        cast(id as bigint) as payment_method_id,
        cast(customer_id as bigint) as customer_id,
        gateway,
        kind as method_kind,
        label,
        cast(is_default as boolean) as is_default,
        mandate_ref,
        cast(created_at as timestamp) as created_at,
        cast(removed_at as timestamp) as removed_at
    from source

)

select * from final
