-- Grain: one row per saved payment method with display details from the gateway (never a card number).
with source as (

    select * from {{ source('raw', 'ledger_payments_method_details') }}

),

final as (

    select
        cast(payment_method_id as bigint) as payment_method_id,
        brand,
        last4,
        cast(exp_month as integer) as exp_month,
        cast(exp_year as integer) as exp_year,
        issuer,
        cast(max_amount_minor as bigint) as max_amount_minor
    from source

)

select * from final
