with source as (

    select * from {{ source('raw', 'ledger_subscriptions') }}

),

final as (

    select
        cast(id as bigint) as subscription_id,
        cast(customer_id as bigint) as customer_id,
        status,
        upper(currency) as currency,
        {{ adapter.quote('interval') }} as billing_interval,
        cast(interval_count as integer) as interval_count,
        cast(billing_anchor as timestamp) as billing_anchor,
        cast(period_index as integer) as period_index,
        cast(current_period_start as timestamp) as current_period_start,
        cast(current_period_end as timestamp) as current_period_end,
        cast(billed_period_start as timestamp) as billed_period_start,
        cast(trial_end as timestamp) as trial_end,
        cast(next_action_at as timestamp) as next_action_at,
        cancel_at_period_end,
        cast(canceled_at as timestamp) as canceled_at,
        cast(paused_at as timestamp) as paused_at,
        cast(coupon_id as bigint) as coupon_id,
        cast(coupon_periods_used as integer) as coupon_periods_used,
        pending_change_json,
        cast(created_at as timestamp) as created_at
    from source

)

select * from final
