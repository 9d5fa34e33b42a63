-- Grain: one row per customer and snapshot instant (every month end up to as_of, plus the end
-- of the as_of day) for every customer subscribed before the snapshot and not churned at it.
-- Every feature reads only rows strictly before snapshot_at; the label churned_in_horizon
-- (a cancel decision or a move to canceled/unpaid in [snapshot_at, snapshot_at + N days),
-- N = var churn_horizon_days) reads only rows after it and is null until that window has
-- fully passed as_of. customer_features_monthly (training) and customer_features (scoring)
-- are the two views of it, so both see exactly the same feature definitions.
{%- set horizon = var('churn_horizon_days', 30) %}

with series as (

    -- 48 months from 2024-01, like int_subscription_months_normalized
    {{ dbt.generate_series(48) }}

),

month_ends as (

    select
        cast({{ dbt.dateadd('month', 'generated_number', "cast('2024-01-01' as date)") }}
            as timestamp) as snapshot_at
    from series

),

snapshots as (

    select snapshot_at from month_ends
    where snapshot_at <= cast({{ as_of_date() }} as timestamp)
    union
    -- The scoring snapshot: everything known by the end of the as_of day.
    select cast({{ dbt.dateadd('day', 1, as_of_date()) }} as timestamp) as snapshot_at

),

subscriptions as (

    select subscription_id, customer_id, created_at
    from {{ ref('stg_ledger__subscriptions') }}

),

events as (

    select
        subscriptions.customer_id, events.occurred_at, events.kind, events.from_status,
        events.to_status
    from {{ ref('stg_ledger__subscription_events') }} as events
    inner join subscriptions on events.subscription_id = subscriptions.subscription_id

),

churn_events as (

    -- The moment a customer decides to leave (or dunning gives up on them).
    select customer_id, min(occurred_at) as churned_at
    from events
    where kind in ('cancel_scheduled', 'canceled') or to_status in ('canceled', 'unpaid')
    group by customer_id

),

customers as (

    select customer_id, min(created_at) as first_subscribed_at
    from subscriptions
    group by customer_id

),

population as (

    select
        customers.customer_id,
        snapshots.snapshot_at,
        customers.first_subscribed_at,
        churn_events.churned_at
    from customers
    inner join snapshots on customers.first_subscribed_at < snapshots.snapshot_at
    left join churn_events on customers.customer_id = churn_events.customer_id
    where churn_events.churned_at is null or churn_events.churned_at >= snapshots.snapshot_at

),

recurring_lines as (

    -- Monthly-normalized recurring amounts, known once the invoice was finalized.
    select
        invoices.customer_id,
        invoices.finalized_at,
        lines.period_start,
        lines.period_end,
        coalesce(plans.interval_count, 1) * case plans.billing_interval
            when 'quarter' then 3 when 'year' then 12 else 1 end as months_per_period,
        {{ int_div('lines.taxable_minor', 'coalesce(plans.interval_count, 1) * case '
                   ~ "plans.billing_interval when 'quarter' then 3 when 'year' then 12 else 1 end") }}
            as line_mrr_minor
    from {{ ref('stg_ledger__invoice_lines') }} as lines
    inner join {{ ref('stg_ledger__invoices') }} as invoices
        on lines.invoice_id = invoices.invoice_id
    left join {{ ref('stg_ledger__plans') }} as plans on lines.plan_id = plans.plan_id
    where lines.line_kind = 'recurring' and invoices.finalized_at is not null

),

mrr as (

    select
        population.customer_id,
        population.snapshot_at,
        sum(case when recurring_lines.period_start < population.snapshot_at
                  and recurring_lines.period_end >= population.snapshot_at
                 then recurring_lines.line_mrr_minor else 0 end) as mrr_minor,
        sum(case when recurring_lines.period_start
                      < {{ dbt.dateadd('month', -3, 'population.snapshot_at') }}
                  and recurring_lines.period_end
                      >= {{ dbt.dateadd('month', -3, 'population.snapshot_at') }}
                 then recurring_lines.line_mrr_minor else 0 end) as mrr_3m_ago_minor,
        max(recurring_lines.line_mrr_minor) as max_line_mrr_minor,
        max(recurring_lines.period_end) as paid_through_at,
        max(case when recurring_lines.period_start < population.snapshot_at
                  and recurring_lines.period_end >= population.snapshot_at
                 then recurring_lines.months_per_period end) as months_per_period
    from population
    inner join recurring_lines
        on recurring_lines.customer_id = population.customer_id
        and recurring_lines.finalized_at < population.snapshot_at
    group by 1, 2

),

prorations as (

    -- Mid-period changes: a negative net proration is a contraction (seats or plan down).
    select
        population.customer_id,
        population.snapshot_at,
        sum(case when invoices.subtotal_minor < 0 then 1 else 0 end) as contractions_90d,
        sum(case when invoices.subtotal_minor > 0 then 1 else 0 end) as expansions_90d
    from population
    inner join {{ ref('stg_ledger__invoices') }} as invoices
        on invoices.customer_id = population.customer_id
        and invoices.invoice_kind = 'proration'
        and invoices.created_at < population.snapshot_at
        and invoices.created_at >= {{ dbt.dateadd('day', -90, 'population.snapshot_at') }}
    group by 1, 2

),

event_features as (

    select
        population.customer_id,
        population.snapshot_at,
        sum(case when events.kind = 'plan_changed'
                  and events.occurred_at >= {{ dbt.dateadd('day', -90, 'population.snapshot_at') }}
                 then 1 else 0 end) as plan_changes_90d,
        sum(case when events.kind = 'change_scheduled'
                  and events.occurred_at >= {{ dbt.dateadd('day', -90, 'population.snapshot_at') }}
                 then 1 else 0 end) as scheduled_changes_90d,
        sum(case when events.kind = 'paused'
                  and events.occurred_at >= {{ dbt.dateadd('day', -90, 'population.snapshot_at') }}
                 then 1 else 0 end) as pauses_90d,
        sum(case when events.kind = 'paused' then 1 else 0 end) as pauses_total,
        sum(case when events.to_status = 'past_due'
                  and events.occurred_at >= {{ dbt.dateadd('day', -90, 'population.snapshot_at') }}
                 then 1 else 0 end) as past_due_90d,
        max(case when events.kind = 'paused' then events.occurred_at end) as last_paused_at,
        max(case when events.kind = 'resumed' then events.occurred_at end) as last_resumed_at,
        max(case when events.to_status = 'past_due' then events.occurred_at end)
            as last_past_due_at,
        max(case when events.to_status = 'active' and events.from_status = 'past_due'
                 then events.occurred_at end) as last_recovered_at
    from population
    inner join events
        on events.customer_id = population.customer_id
        and events.occurred_at < population.snapshot_at
    group by 1, 2

),

open_invoices as (

    -- Invoices finalized before the snapshot and not yet paid or voided at it: how far into
    -- dunning the customer is (dunning gives up after a fixed number of days).
    select
        population.customer_id,
        population.snapshot_at,
        count(*) as open_invoices,
        sum(invoices.amount_due_minor) as open_amount_due_minor,
        max({{ dbt.datediff('invoices.finalized_at', 'population.snapshot_at', 'day') }})
            as oldest_open_invoice_days
    from population
    inner join {{ ref('stg_ledger__invoices') }} as invoices
        on invoices.customer_id = population.customer_id
        and invoices.finalized_at < population.snapshot_at
        and (invoices.paid_at is null or invoices.paid_at >= population.snapshot_at)
        and (invoices.voided_at is null or invoices.voided_at >= population.snapshot_at)
        and invoices.amount_due_minor > 0
    group by 1, 2

),

attempts as (

    select
        invoices.customer_id, attempts.status, attempts.created_at, attempts.decline_code,
        payments.method
    from {{ ref('stg_ledger__payment_attempts') }} as attempts
    inner join {{ ref('stg_ledger__invoices') }} as invoices
        on attempts.invoice_id = invoices.invoice_id
    left join {{ ref('fct_payments') }} as payments
        on attempts.gateway = payments.gateway
        and attempts.gateway_payment_id = payments.gateway_payment_id
    where attempts.status in ('succeeded', 'failed')

),

payment_features as (

    select
        population.customer_id,
        population.snapshot_at,
        sum(case when attempts.status = 'failed'
                  and attempts.created_at >= {{ dbt.dateadd('day', -30, 'population.snapshot_at') }}
                 then 1 else 0 end) as failed_payments_30d,
        sum(case when attempts.status = 'failed'
                  and attempts.created_at >= {{ dbt.dateadd('day', -90, 'population.snapshot_at') }}
                 then 1 else 0 end) as failed_payments_90d,
        sum(case when attempts.status = 'succeeded'
                  and attempts.created_at >= {{ dbt.dateadd('day', -90, 'population.snapshot_at') }}
                 then 1 else 0 end) as payments_90d,
        -- Hard declines: the instrument is gone (expired, revoked, closed), not just short.
        sum(case when attempts.status = 'failed'
                  and attempts.decline_code in ('expired_card', 'lost_card', 'stolen_card',
                      'invalid_account', 'mandate_revoked', 'account_closed', 'do_not_honor',
                      'card_not_supported', 'invalid_vpa')
                  and attempts.created_at >= {{ dbt.dateadd('day', -90, 'population.snapshot_at') }}
                 then 1 else 0 end) as hard_declines_90d,
        sum(case when attempts.status = 'failed' then 1 else 0 end) as failed_payments_total,
        count(*) as payment_attempts_total,
        -- The payment method in use (behaviour differs by rail): share of attempts per method.
        avg(case when attempts.method = 'card' then 1.0 else 0.0 end) as method_card_share,
        avg(case when attempts.method = 'upi' then 1.0 else 0.0 end) as method_upi_share,
        avg(case when attempts.method = 'netbanking' then 1.0 else 0.0 end)
            as method_netbanking_share,
        max(case when attempts.status = 'succeeded' then attempts.created_at end)
            as last_successful_payment_at,
        max(case when attempts.status = 'failed' then attempts.created_at end)
            as last_failed_payment_at
    from population
    inner join attempts
        on attempts.customer_id = population.customer_id
        and attempts.created_at < population.snapshot_at
    group by 1, 2

),

final as (

    select
        population.customer_id,
        population.snapshot_at,
        cast({{ dbt.dateadd('day', -1, 'population.snapshot_at') }} as date) as snapshot_date,
        population.snapshot_at = cast({{ dbt.date_trunc('month', 'population.snapshot_at') }}
            as timestamp) as is_month_end,
        population.snapshot_at = cast({{ dbt.dateadd('day', 1, as_of_date()) }} as timestamp)
            as is_current,
        {{ dbt.datediff('population.first_subscribed_at', 'population.snapshot_at', 'day') }}
            as tenure_days,
        coalesce(mrr.mrr_minor, 0) as mrr_minor,
        coalesce(mrr.mrr_3m_ago_minor, 0) as mrr_3m_ago_minor,
        coalesce(mrr.max_line_mrr_minor, 0) as max_line_mrr_minor,
        coalesce(mrr.months_per_period, 0) as months_per_period,
        {{ dbt.datediff('population.snapshot_at', 'mrr.paid_through_at', 'day') }}
            as days_to_period_end,
        coalesce(open_invoices.open_invoices, 0) as open_invoices,
        coalesce(open_invoices.open_amount_due_minor, 0) as open_amount_due_minor,
        coalesce(open_invoices.oldest_open_invoice_days, -1) as oldest_open_invoice_days,
        coalesce(prorations.contractions_90d, 0) as contractions_90d,
        coalesce(prorations.expansions_90d, 0) as expansions_90d,
        coalesce(event_features.plan_changes_90d, 0) as plan_changes_90d,
        coalesce(event_features.scheduled_changes_90d, 0) as scheduled_changes_90d,
        coalesce(event_features.pauses_90d, 0) as pauses_90d,
        coalesce(event_features.pauses_total, 0) as pauses_total,
        coalesce(event_features.past_due_90d, 0) as past_due_90d,
        case when event_features.last_paused_at is not null
                  and (event_features.last_resumed_at is null
                       or event_features.last_resumed_at < event_features.last_paused_at)
             then 1 else 0 end as is_paused,
        case when event_features.last_past_due_at is not null
                  and (event_features.last_recovered_at is null
                       or event_features.last_recovered_at < event_features.last_past_due_at)
             then 1 else 0 end as is_past_due,
        coalesce(payment_features.failed_payments_30d, 0) as failed_payments_30d,
        coalesce(payment_features.failed_payments_90d, 0) as failed_payments_90d,
        coalesce(payment_features.payments_90d, 0) as payments_90d,
        coalesce(payment_features.hard_declines_90d, 0) as hard_declines_90d,
        coalesce(payment_features.failed_payments_total, 0) as failed_payments_total,
        coalesce(payment_features.payment_attempts_total, 0) as payment_attempts_total,
        payment_features.method_card_share,
        payment_features.method_upi_share,
        payment_features.method_netbanking_share,
        {{ dbt.datediff('payment_features.last_successful_payment_at', 'population.snapshot_at',
                        'day') }} as days_since_last_successful_payment,
        {{ dbt.datediff('payment_features.last_failed_payment_at', 'population.snapshot_at',
                        'day') }} as days_since_last_failed_payment,
        {{ horizon }} as label_horizon_days,
        case
            when {{ dbt.dateadd('day', horizon, 'population.snapshot_at') }}
                 > cast({{ as_of_date() }} as timestamp) then null
            when population.churned_at is not null
                 and population.churned_at
                     < {{ dbt.dateadd('day', horizon, 'population.snapshot_at') }} then 1
            else 0
        end as churned_in_horizon
    from population
    left join mrr
        on population.customer_id = mrr.customer_id and population.snapshot_at = mrr.snapshot_at
    left join prorations
        on population.customer_id = prorations.customer_id
        and population.snapshot_at = prorations.snapshot_at
    left join event_features
        on population.customer_id = event_features.customer_id
        and population.snapshot_at = event_features.snapshot_at
    left join payment_features
        on population.customer_id = payment_features.customer_id
        and population.snapshot_at = payment_features.snapshot_at
    left join open_invoices
        on population.customer_id = open_invoices.customer_id
        and population.snapshot_at = open_invoices.snapshot_at

)

select * from final
