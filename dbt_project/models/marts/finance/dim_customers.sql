-- Grain: one row per customer, with current MRR (as_of month) and signup cohort.
with customers as (

    select * from {{ ref('stg_ledger__customers') }}

),

mrr as (

    select
        customer_id,
        min(month) as first_mrr_month,
        sum(case when month = {{ month_of(as_of_date()) }} then mrr_minor else 0 end)
            as current_mrr_minor
    from {{ ref('int_subscription_months_normalized') }}
    group by customer_id

),

subscriptions as (

    select customer_id, count(*) as subscription_count, min(created_at) as first_subscribed_at
    from {{ ref('stg_ledger__subscriptions') }}
    group by customer_id

),

final as (

    select
        customers.customer_id,
        customers.customer_key,
        customers.external_ref,
        customers.country,
        customers.state_code,
        customers.tax_status,
        customers.gstin is not null as is_business,
        customers.currency,
        customers.created_at,
        {{ month_of('customers.created_at') }} as signup_month,
        mrr.first_mrr_month as cohort_month,
        subscriptions.first_subscribed_at,
        coalesce(subscriptions.subscription_count, 0) as subscription_count,
        coalesce(mrr.current_mrr_minor, 0) as current_mrr_minor,
        coalesce(mrr.current_mrr_minor, 0) > 0 as is_active
    from customers
    left join mrr on customers.customer_id = mrr.customer_id
    left join subscriptions on customers.customer_id = subscriptions.customer_id

)

select * from final
