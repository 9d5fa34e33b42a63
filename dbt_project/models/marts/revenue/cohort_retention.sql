-- Grain: one row per cohort month (first month with MRR), currency and later month:
-- logo retention and net revenue retention against the cohort's first month.
with customer_months as (

    select month, customer_id, currency, sum(mrr_minor) as mrr_minor
    from {{ ref('int_subscription_months_normalized') }}
    group by 1, 2, 3

),

cohorts as (

    select customer_id, currency, min(month) as cohort_month
    from customer_months
    group by 1, 2

),

cohort_sizes as (

    select
        cohorts.cohort_month,
        cohorts.currency,
        count(*) as cohort_customers,
        sum(customer_months.mrr_minor) as cohort_start_mrr_minor
    from cohorts
    inner join customer_months
        on cohorts.customer_id = customer_months.customer_id
        and cohorts.currency = customer_months.currency
        and cohorts.cohort_month = customer_months.month
    group by 1, 2

),

activity as (

    select
        cohorts.cohort_month,
        cohorts.currency,
        customer_months.month,
        count(distinct customer_months.customer_id) as active_customers,
        sum(customer_months.mrr_minor) as mrr_minor
    from cohorts
    inner join customer_months
        on cohorts.customer_id = customer_months.customer_id
        and cohorts.currency = customer_months.currency
    where customer_months.mrr_minor > 0
    group by 1, 2, 3

),

final as (

    select
        activity.cohort_month,
        activity.currency,
        activity.month,
        {{ dbt.datediff('activity.cohort_month', 'activity.month', 'month') }} as months_since_start,
        cohort_sizes.cohort_customers,
        activity.active_customers,
        cohort_sizes.cohort_start_mrr_minor,
        activity.mrr_minor,
        {{ safe_ratio('activity.active_customers', 'cohort_sizes.cohort_customers') }}
            as logo_retention,
        {{ safe_ratio('activity.mrr_minor', 'cohort_sizes.cohort_start_mrr_minor') }}
            as revenue_retention
    from activity
    inner join cohort_sizes
        on activity.cohort_month = cohort_sizes.cohort_month
        and activity.currency = cohort_sizes.currency

)

select * from final
