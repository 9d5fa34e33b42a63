-- Grain: one row per product version.
with source as (

    select * from {{ source('raw', 'ledger_products') }}

),

final as (

    select
        cast(id as bigint) as product_id,
        code,
        cast(version as integer) as version,
        name,
        sac,
        fingerprint,
        cast(is_current as boolean) as is_current,
        cast(created_at as timestamp) as created_at
    from source

)

select * from final
