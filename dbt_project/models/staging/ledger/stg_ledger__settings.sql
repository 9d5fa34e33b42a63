-- Grain: one row per supplier setting.
with source as (

    select * from {{ source('raw', 'ledger_ledger_settings') }}

),

final as (

    select
        key as setting_key,
        value as setting_value
    from source

)

select * from final
