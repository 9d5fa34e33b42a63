{{ config(materialized='table') }}

with charges as (

    select * from {{ ref('stg_simulated__charges') }}

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
    from charges

)

select * from final
