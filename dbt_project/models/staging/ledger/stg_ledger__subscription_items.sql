with source as (

    select * from {{ source('raw', 'ledger_subscription_items') }}

),

final as (

    select
        cast(id as bigint) as subscription_item_id,
        cast(subscription_id as bigint) as subscription_id,
        cast(plan_id as bigint) as plan_id,
        cast(quantity as integer) as quantity
    from source

)

select * from final
