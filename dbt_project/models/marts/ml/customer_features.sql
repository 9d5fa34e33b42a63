-- Grain: one row per customer with MRR in the snapshot month (var customer_features_month,
-- default the as_of month): churn-model features as of the end of that month, plus the label
-- churned_next_month (null when the next month is after as_of).
{%- set snapshot = "cast('" ~ var('customer_features_month') ~ "' as date)"
    if var('customer_features_month', none) else month_of(as_of_date()) %}

with bounds as (

    select
        {{ snapshot }} as snapshot_month,
        cast({{ dbt.dateadd('month', 1, snapshot) }} as date) as snapshot_end

),

customer_months as (

    select month, customer_id, sum(mrr_minor) as mrr_minor
    from {{ ref('int_subscription_months_normalized') }}
    group by 1, 2

),

population as (

    select customer_months.customer_id, customer_months.mrr_minor
    from customer_months
    cross join bounds
    where customer_months.month = bounds.snapshot_month and customer_months.mrr_minor > 0

),

history as (

    select
        customer_months.customer_id,
        sum(case when customer_months.month
                      = cast({{ dbt.dateadd('month', -3, 'bounds.snapshot_month') }} as date)
                 then customer_months.mrr_minor else 0 end) as mrr_3m_ago_minor,
        max(case when customer_months.month = bounds.snapshot_end then 1 else 0 end)
            as active_next_month
    from customer_months
    cross join bounds
    group by customer_months.customer_id

),

movements as (

    select
        movements.customer_id,
        sum(case when movements.movement = 'contraction' then 1 else 0 end) as contractions_90d,
        sum(case when movements.movement = 'expansion' then 1 else 0 end) as expansions_90d
    from {{ ref('fct_mrr_movements') }} as movements
    cross join bounds
    where movements.month > cast({{ dbt.dateadd('month', -3, 'bounds.snapshot_month') }} as date)
      and movements.month <= bounds.snapshot_month
    group by movements.customer_id

),

events as (

    select
        subscriptions.customer_id,
        min(subscriptions.created_at) as first_subscribed_at,
        sum(case when events.kind = 'plan_changed'
                  and events.occurred_at >= {{ dbt.dateadd('day', -90, 'bounds.snapshot_end') }}
                 then 1 else 0 end) as plan_changes_90d,
        sum(case when events.kind = 'plan_changed' then 1 else 0 end) as plan_changes_total,
        sum(case when events.kind = 'paused' then 1 else 0 end) as pauses_total
    from {{ ref('stg_ledger__subscriptions') }} as subscriptions
    cross join bounds
    left join {{ ref('stg_ledger__subscription_events') }} as events
        on subscriptions.subscription_id = events.subscription_id
        and events.occurred_at < bounds.snapshot_end
    where subscriptions.created_at < bounds.snapshot_end
    group by subscriptions.customer_id

),

payments as (

    select
        invoices.customer_id,
        sum(case when attempts.status = 'failed'
                  and attempts.created_at >= {{ dbt.dateadd('day', -30, 'bounds.snapshot_end') }}
                 then 1 else 0 end) as failed_payments_30d,
        sum(case when attempts.status = 'failed'
                  and attempts.created_at >= {{ dbt.dateadd('day', -90, 'bounds.snapshot_end') }}
                 then 1 else 0 end) as failed_payments_90d,
        max(case when attempts.status = 'succeeded' then attempts.created_at end)
            as last_successful_payment_at
    from {{ ref('stg_ledger__payment_attempts') }} as attempts
    inner join {{ ref('stg_ledger__invoices') }} as invoices
        on attempts.invoice_id = invoices.invoice_id
    cross join bounds
    where attempts.created_at < bounds.snapshot_end
    group by invoices.customer_id

),

final as (

    select
        population.customer_id,
        bounds.snapshot_month,
        {{ dbt.datediff('events.first_subscribed_at', 'bounds.snapshot_end', 'day') }}
            as tenure_days,
        population.mrr_minor,
        coalesce(history.mrr_3m_ago_minor, 0) as mrr_3m_ago_minor,
        coalesce(events.plan_changes_90d, 0) as plan_changes_90d,
        coalesce(events.plan_changes_total, 0) as plan_changes_total,
        coalesce(events.pauses_total, 0) as pauses_total,
        coalesce(movements.contractions_90d, 0) > 0 as downgrade_flag,
        coalesce(movements.expansions_90d, 0) > 0 as upgrade_flag,
        coalesce(payments.failed_payments_30d, 0) as failed_payments_30d,
        coalesce(payments.failed_payments_90d, 0) as failed_payments_90d,
        {{ dbt.datediff('payments.last_successful_payment_at', 'bounds.snapshot_end', 'day') }}
            as days_since_last_successful_payment,
        case when bounds.snapshot_end > {{ month_of(as_of_date()) }} then null
             else coalesce(history.active_next_month, 0) = 0
        end as churned_next_month
    from population
    cross join bounds
    left join history on population.customer_id = history.customer_id
    left join movements on population.customer_id = movements.customer_id
    left join events on population.customer_id = events.customer_id
    left join payments on population.customer_id = payments.customer_id

)

select * from final
