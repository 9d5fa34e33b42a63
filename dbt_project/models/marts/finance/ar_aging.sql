-- Grain: one row per currency as of the run's as_of date: open receivables by age of the
-- invoice date (0-30, 31-60, 61-90, 90+ days) and DSO over the trailing 90 days.
with invoices as (

    select
        *,
        {{ dbt.datediff('cast(issued_at as date)', as_of_date(), 'day') }} as age_days
    from {{ ref('fct_invoices') }}
    where status not in ('draft', 'void')
      and cast(issued_at as date) <= {{ as_of_date() }}

),

final as (

    select
        {{ as_of_date() }} as as_of_date,
        currency,
        sum(amount_outstanding_minor) as outstanding_minor,
        sum(case when age_days <= 30 then amount_outstanding_minor else 0 end)
            as bucket_0_30_minor,
        sum(case when age_days between 31 and 60 then amount_outstanding_minor else 0 end)
            as bucket_31_60_minor,
        sum(case when age_days between 61 and 90 then amount_outstanding_minor else 0 end)
            as bucket_61_90_minor,
        sum(case when age_days > 90 then amount_outstanding_minor else 0 end)
            as bucket_90_plus_minor,
        sum(case when amount_outstanding_minor > 0 then 1 else 0 end) as open_invoice_count,
        sum(case when age_days < 90 then total_minor else 0 end) as billed_last_90d_minor,
        -- DSO = receivables / credit sales over the period x days in the period
        {{ safe_ratio('sum(amount_outstanding_minor) * 90',
                      'sum(case when age_days < 90 then total_minor else 0 end)') }} as dso_days
    from invoices
    group by currency

)

select * from final
