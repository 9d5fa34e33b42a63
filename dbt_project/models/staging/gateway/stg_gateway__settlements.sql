with source as (

    select * from {{ source('raw', 'gateway_settlements') }}

),

final as (

    select
        id as settlement_id,
        gateway,
        status,
        utr,
        cast(amount_minor as bigint) as net_minor,
        cast(coalesce(fee_minor, 0) as bigint) as fee_minor,
        cast(coalesce(tax_minor, 0) as bigint) as fee_tax_minor,
        upper(currency) as currency,
        cast(created_at as timestamp) as created_at
    from source

)

select * from final
