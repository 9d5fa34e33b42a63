-- Grain: one row per month and currency. Roll-forward:
-- prior mrr + new + expansion - contraction - churn + reactivation = mrr.
with movements as (

    select * from {{ ref('fct_mrr_movements') }}

),

customers as (

    select
        month,
        currency,
        customer_id,
        sum(mrr_minor) as mrr_minor,
        sum(prior_mrr_minor) as prior_mrr_minor
    from movements
    group by 1, 2, 3

),

logos as (

    select
        month,
        currency,
        sum(case when mrr_minor > 0 then 1 else 0 end) as active_customers,
        sum(case when prior_mrr_minor > 0 then 1 else 0 end) as prior_active_customers,
        sum(case when prior_mrr_minor > 0 and mrr_minor = 0 then 1 else 0 end)
            as churned_customers
    from customers
    group by 1, 2

),

money as (

    select
        month,
        currency,
        sum(mrr_minor) as mrr_minor,
        sum(prior_mrr_minor) as prior_mrr_minor,
        sum(case when movement = 'new' then mrr_minor else 0 end) as new_minor,
        sum(case when movement = 'expansion' then mrr_minor - prior_mrr_minor else 0 end)
            as expansion_minor,
        sum(case when movement = 'contraction' then prior_mrr_minor - mrr_minor else 0 end)
            as contraction_minor,
        sum(case when movement = 'churn' then prior_mrr_minor else 0 end) as churn_minor,
        sum(case when movement = 'reactivation' then mrr_minor else 0 end) as reactivation_minor
    from movements
    group by 1, 2

),

final as (

    select
        money.month,
        money.currency,
        money.mrr_minor,
        money.prior_mrr_minor,
        money.new_minor,
        money.expansion_minor,
        money.contraction_minor,
        money.churn_minor,
        money.reactivation_minor,
        logos.active_customers,
        logos.churned_customers,
        money.mrr_minor * 12 as arr_minor,
        {{ safe_ratio('money.prior_mrr_minor + money.expansion_minor - money.contraction_minor - money.churn_minor',
                      'money.prior_mrr_minor') }} as nrr,
        {{ safe_ratio('money.prior_mrr_minor - money.contraction_minor - money.churn_minor',
                      'money.prior_mrr_minor') }} as grr,
        {{ safe_ratio('logos.churned_customers', 'logos.prior_active_customers') }}
            as logo_churn_rate
    from money
    inner join logos on money.month = logos.month and money.currency = logos.currency

)

select * from final
