with source as (

    select * from {{ source('raw', 'ledger_prices') }}

),

final as (

    select
        cast(id as bigint) as price_id,
        cast(plan_id as bigint) as plan_id,
        upper(currency) as currency,
        cast(unit_amount_minor as bigint) as unit_amount_minor,
        tiers_json
    from source

)

select * from final
