-- Grain: one row per subscription and calendar month in which a recurring invoice line covers
-- the month's end; for the month that contains as_of, the line must cover as_of instead (the
-- month has not ended: renewals due later in it are not billed yet and are not churn). Quarterly/yearly periods are normalized to a monthly amount with integer
-- division (floor) of the taxable value (after discounts, before GST).
with invoices as (

    select invoice_id, subscription_id, customer_id, currency
    from {{ ref('stg_ledger__invoices') }}
    where status in ('open', 'paid', 'uncollectible')
      and subscription_id is not null

),

lines as (

    select invoice_id, plan_id, taxable_minor, period_start, period_end
    from {{ ref('stg_ledger__invoice_lines') }}
    where line_kind = 'recurring' and period_start is not null and period_end is not null

),

plans as (

    select
        plan_id,
        interval_count * case billing_interval
            when 'month' then 1 when 'quarter' then 3 when 'year' then 12 end as months_per_period
    from {{ ref('stg_ledger__plans') }}

),

series as (

    -- 48 months from 2024-01 (generate_series needs no warehouse round trip at compile time)
    {{ dbt.generate_series(48) }}

),

months as (

    select
        cast({{ dbt.dateadd('month', 'generated_number - 1', "cast('2024-01-01' as date)") }}
            as date) as month_start,
        cast({{ dbt.dateadd('month', 'generated_number', "cast('2024-01-01' as date)") }}
            as date) as next_month_start,
        -- the instant a month's MRR is measured at: its end, or as_of while it is running
        case
            when cast({{ dbt.dateadd('month', 'generated_number', "cast('2024-01-01' as date)") }}
                as date) > {{ as_of_date() }} then {{ as_of_date() }}
            else cast({{ dbt.dateadd('month', 'generated_number', "cast('2024-01-01' as date)") }}
                as date)
        end as measured_at
    from series

),

normalized as (

    select
        invoices.subscription_id,
        invoices.customer_id,
        invoices.currency,
        lines.period_start,
        lines.period_end,
        {{ int_div('lines.taxable_minor', 'coalesce(plans.months_per_period, 1)') }}
            as line_mrr_minor
    from lines
    inner join invoices on lines.invoice_id = invoices.invoice_id
    left join plans on lines.plan_id = plans.plan_id

),

final as (

    select
        months.month_start as month,
        normalized.subscription_id,
        normalized.customer_id,
        normalized.currency,
        sum(normalized.line_mrr_minor) as mrr_minor
    from normalized
    inner join months
        on normalized.period_start < months.measured_at
        and normalized.period_end >= months.measured_at
    where months.month_start <= {{ month_of(as_of_date()) }}
    group by 1, 2, 3, 4

)

select * from final
