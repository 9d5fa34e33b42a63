-- Grain: one row per day, gateway, method, issuer (card issuer / bank / UPI handle), currency
-- and decline code ('none' for attempts that did not fail). Group totals repeat on each row
-- so success rate by gateway x method x issuer reads off any row.
with payments as (

    select
        cast(created_at as date) as payment_date,
        gateway,
        coalesce(method, 'unknown') as method,
        coalesce(issuer, 'unknown') as issuer,
        currency,
        case when status = 'failed' then coalesce(decline_code, 'unknown') else 'none' end
            as decline_code,
        status,
        amount_minor
    from {{ ref('fct_payments') }}

),

grouped as (

    select
        payment_date, gateway, method, issuer, currency, decline_code,
        count(*) as attempts,
        sum(case when status = 'succeeded' then 1 else 0 end) as succeeded,
        sum(case when status = 'failed' then 1 else 0 end) as failed,
        sum(case when status = 'succeeded' then amount_minor else 0 end) as succeeded_amount_minor
    from payments
    group by 1, 2, 3, 4, 5, 6

),

final as (

    select
        {{ dbt.concat([dbt.safe_cast("payment_date", dbt.type_string()), "'|'", "gateway",
                       "'|'", "method", "'|'", "issuer", "'|'", "currency", "'|'",
                       "decline_code"]) }} as row_key,
        grouped.*,
        sum(attempts) over (partition by payment_date, gateway, method, issuer, currency)
            as group_attempts,
        {{ safe_ratio(
            'sum(succeeded) over (partition by payment_date, gateway, method, issuer, currency)',
            'sum(attempts) over (partition by payment_date, gateway, method, issuer, currency)') }}
            as group_success_rate
    from grouped

)

select * from final
