-- Charges from the real gateways (Stripe, Razorpay); the simulated gateway has its own model.
with source as (

    select * from {{ source('raw', 'gateway_charges') }}
    where gateway <> 'simulated'

),

final as (

    select
        {{ dbt.concat(["gateway", "':'", "charge_id"]) }} as charge_key,
        charge_id,
        gateway,
        charge_id as gateway_payment_id,
        invoice_id,
        customer_id,
        gateway_customer_id,
        method,
        issuer,
        card_brand,
        card_country,
        status,
        cast(amount_minor as bigint) as amount_minor,
        upper(currency) as currency,
        cast(coalesce(fee_minor, 0) as bigint) as fee_minor,
        cast(coalesce(fee_tax_minor, 0) as bigint) as fee_tax_minor,
        decline_code,
        cast(coalesce(attempt_number, 1) as integer) as attempt_number,
        cast(created_at as timestamp) as created_at,
        cast(settled_at as timestamp) as settled_at,
        settlement_id
    from source

)

select * from final
