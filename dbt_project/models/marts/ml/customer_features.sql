-- Grain: one row per customer subscribed and not churned at the end of the as_of day: the
-- current snapshot that churn scoring reads. Same features as customer_features_monthly.
with snapshots as (

    select * from {{ ref('customer_features_snapshots') }}
    where is_current

),

final as (

    select * from snapshots

)

select * from final
