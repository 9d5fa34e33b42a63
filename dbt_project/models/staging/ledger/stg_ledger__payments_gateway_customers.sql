-- Grain: one row per customer and gateway.
with source as (

    select * from {{ source('raw', 'ledger_payments_gateway_customers') }}

),

final as (

    select
        cast(customer_id as bigint) as customer_id,
        gateway,
        gateway_customer_id,
        cast(created_at as timestamp) as created_at
    from source

)

select * from final
