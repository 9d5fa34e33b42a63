-- Grain: one row per coupon.
with source as (

    select * from {{ source('raw', 'ledger_coupons') }}

),

final as (

    select
        cast(id as bigint) as coupon_id,
        code,
        cast(percent_off_bp as integer) as percent_off_bp,
        cast(amount_off_minor as bigint) as amount_off_minor,
        upper(currency) as currency,
        duration,
        cast(duration_in_periods as integer) as duration_in_periods,
        fingerprint,
        cast(created_at as timestamp) as created_at
    from source

)

select * from final
