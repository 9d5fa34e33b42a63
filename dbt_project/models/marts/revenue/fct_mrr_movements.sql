-- Grain: one row per subscription and month in which it had MRR or had MRR the month before.
with current_month as (

    select * from {{ ref('int_subscription_months_normalized') }}

),

prior_month as (

    select
        cast({{ dbt.dateadd('month', 1, 'month') }} as date) as month,
        subscription_id,
        customer_id,
        currency,
        mrr_minor as prior_mrr_minor
    from current_month

),

first_months as (

    select subscription_id, min(month) as first_month
    from current_month
    group by subscription_id

),

joined as (

    select
        coalesce(current_month.month, prior_month.month) as month,
        coalesce(current_month.customer_id, prior_month.customer_id) as customer_id,
        coalesce(current_month.subscription_id, prior_month.subscription_id) as subscription_id,
        coalesce(current_month.currency, prior_month.currency) as currency,
        coalesce(current_month.mrr_minor, 0) as mrr_minor,
        coalesce(prior_month.prior_mrr_minor, 0) as prior_mrr_minor
    from current_month
    full outer join prior_month
        on current_month.month = prior_month.month
        and current_month.subscription_id = prior_month.subscription_id

),

final as (

    select
        {{ dbt.concat([dbt.safe_cast("joined.subscription_id", dbt.type_string()), "':'",
                       dbt.safe_cast("joined.month", dbt.type_string())]) }} as mrr_movement_key,
        joined.month,
        joined.customer_id,
        joined.subscription_id,
        joined.currency,
        joined.mrr_minor,
        joined.prior_mrr_minor,
        case
            when joined.prior_mrr_minor = 0 and joined.month = first_months.first_month then 'new'
            when joined.prior_mrr_minor = 0 then 'reactivation'
            when joined.mrr_minor = 0 then 'churn'
            when joined.mrr_minor > joined.prior_mrr_minor then 'expansion'
            when joined.mrr_minor < joined.prior_mrr_minor then 'contraction'
            else 'unchanged'
        end as movement
    from joined
    inner join first_months on joined.subscription_id = first_months.subscription_id
    where joined.month <= {{ month_of(as_of_date()) }}

)

select * from final
