-- prior MRR + new + expansion - contraction - churn + reactivation = MRR, every month and
-- currency; and this month's prior MRR is last month's MRR.
with monthly as (

    select * from {{ ref('mrr_monthly') }}

),

continuity as (

    select this_month.month, this_month.currency
    from monthly as this_month
    inner join monthly as last_month
        on this_month.currency = last_month.currency
        and this_month.month = cast({{ dbt.dateadd('month', 1, 'last_month.month') }} as date)
    where this_month.prior_mrr_minor <> last_month.mrr_minor

),

final as (

    select month, currency from monthly
    where prior_mrr_minor + new_minor + expansion_minor - contraction_minor - churn_minor
          + reactivation_minor <> mrr_minor
    union all
    select month, currency from continuity

)

select * from final
