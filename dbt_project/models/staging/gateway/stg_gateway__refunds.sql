with source as (

    select * from {{ source('raw', 'gateway_refunds') }}

),

final as (

    select
        id as refund_id,
        gateway,
        payment_id as gateway_payment_id,
        status,
        cast(amount_minor as bigint) as amount_minor,
        upper(currency) as currency,
        reason,
        cast(created_at as timestamp) as created_at
    from source

)

select * from final
