{{ config(materialized='table') }}

-- Union over gateways: the simulated gateway and the real ones (Stripe, Razorpay).
with simulated as (

    select
        gateway, gateway_payment_id, invoice_id, customer_id, method, issuer, card_brand,
        card_country, status,
        amount_minor, currency, fee_minor, fee_tax_minor, decline_code, attempt_number,
        created_at, settled_at, settlement_id
    from {{ ref('stg_simulated__charges') }}

),

real_gateways as (

    select
        gateway, gateway_payment_id, invoice_id, customer_id, method, issuer, card_brand,
        card_country, status,
        amount_minor, currency, fee_minor, fee_tax_minor, decline_code, attempt_number,
        created_at, settled_at, settlement_id
    from {{ ref('stg_gateway__charges') }}

),

payments as (

    select * from simulated
    union all
    select * from real_gateways

),

final as (

    select
        {{ dbt.concat(["gateway", "':'", "gateway_payment_id"]) }} as payment_id,
        gateway,
        gateway_payment_id,
        invoice_id,
        customer_id,
        method,
        issuer,
        card_brand,
        card_country,
        status,
        amount_minor,
        currency,
        fee_minor,
        fee_tax_minor,
        decline_code,
        attempt_number,
        created_at,
        settled_at,
        settlement_id
    from payments

)

select * from final
