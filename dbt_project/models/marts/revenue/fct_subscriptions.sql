-- Grain: one row per subscription: current state, main plan and MRR in the as_of month.
with subscriptions as (

    select * from {{ ref('stg_ledger__subscriptions') }}

),

items as (

    select
        items.subscription_id,
        items.plan_id,
        items.quantity,
        row_number() over (
            partition by items.subscription_id
            order by case when plans.is_addon then 1 else 0 end, items.subscription_item_id
        ) as item_rank,
        count(*) over (partition by items.subscription_id) as item_count
    from {{ ref('stg_ledger__subscription_items') }} as items
    left join {{ ref('stg_ledger__plans') }} as plans on items.plan_id = plans.plan_id

),

mrr as (

    select subscription_id, sum(mrr_minor) as current_mrr_minor
    from {{ ref('int_subscription_months_normalized') }}
    where month = {{ month_of(as_of_date()) }}
    group by subscription_id

),

final as (

    select
        subscriptions.subscription_id,
        subscriptions.customer_id,
        subscriptions.status,
        subscriptions.currency,
        subscriptions.billing_interval,
        subscriptions.interval_count,
        items.plan_id as main_plan_id,
        items.quantity as main_quantity,
        coalesce(items.item_count, 0) as item_count,
        subscriptions.created_at as started_at,
        subscriptions.trial_end,
        subscriptions.current_period_start,
        subscriptions.current_period_end,
        subscriptions.cancel_at_period_end,
        subscriptions.canceled_at,
        subscriptions.paused_at,
        coalesce(mrr.current_mrr_minor, 0) as current_mrr_minor
    from subscriptions
    left join items on subscriptions.subscription_id = items.subscription_id and items.item_rank = 1
    left join mrr on subscriptions.subscription_id = mrr.subscription_id

)

select * from final
