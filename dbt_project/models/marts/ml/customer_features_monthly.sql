-- Grain: one row per customer and month-end snapshot (snapshot_at = first instant of the next
-- month): the churn training panel. Features only from before snapshot_at, the label
-- churned_in_horizon only from after it (see customer_features_snapshots).
with snapshots as (

    select * from {{ ref('customer_features_snapshots') }}
    where is_month_end

),

final as (

    select * from snapshots

)

select * from final
