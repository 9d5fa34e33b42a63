with source as (

    select * from {{ source('raw', 'gateway_charges') }}
    where gateway = 'simulated'

),

final as (

    select
        charge_id,
        gateway,
        charge_id as gateway_payment_id,
        invoice_id,
        customer_id,
        method,
        issuer,
        card_brand,
        card_country,
        status,
        cast(amount_minor as bigint) as amount_minor,
        upper(currency) as currency,
        cast(fee_minor as bigint) as fee_minor,
        cast(fee_tax_minor as bigint) as fee_tax_minor,
        decline_code,
        cast(attempt_number as integer) as attempt_number,
        cast(created_at as timestamp) as created_at,
        cast(settled_at as timestamp) as settled_at,
        settlement_id
    from source

)

select * from final
