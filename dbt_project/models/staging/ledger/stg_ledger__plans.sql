with source as (

    select * from {{ source('raw', 'ledger_plans') }}

),

final as (

    select
        cast(id as bigint) as plan_id,
        code,
        cast(version as integer) as version,
        cast(product_id as bigint) as product_id,
        name,
        {{ adapter.quote('interval') }} as billing_interval,
        cast(interval_count as integer) as interval_count,
        cast(trial_days as integer) as trial_days,
        pricing_model,
        is_addon,
        fingerprint,
        is_current,
        cast(created_at as timestamp) as created_at
    from source

)

select * from final
