with source as (

    select * from {{ source('raw', 'ledger_subscription_events') }}

),

final as (

    select
        cast(id as bigint) as subscription_event_id,
        cast(subscription_id as bigint) as subscription_id,
        cast({{ adapter.quote('at') }} as timestamp) as occurred_at,
        kind,
        from_status,
        to_status,
        detail_json
    from source

)

select * from final
