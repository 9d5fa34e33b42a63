-- Grain: one row per plan version, with its period length in months.
with plans as (

    select * from {{ ref('stg_ledger__plans') }}

),

final as (

    select
        plan_id,
        code as plan_code,
        version as plan_version,
        name as plan_name,
        product_id,
        billing_interval,
        interval_count,
        interval_count * case billing_interval
            when 'month' then 1 when 'quarter' then 3 when 'year' then 12 end as months_per_period,
        pricing_model,
        trial_days,
        is_addon,
        is_current,
        created_at
    from plans

)

select * from final
