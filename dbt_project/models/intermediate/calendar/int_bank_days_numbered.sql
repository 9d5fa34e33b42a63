-- Grain: one row per calendar day 2024-01-01 .. 2027-12-31. Indian bank working days are
-- numbered consecutively so "N working days after d" is a lookup, not a loop.
{#- generate_series, not date_spine: date_spine asks the warehouse for the day count, which
    would make `dbt compile` need a live connection. 1461 days = 2024-01-01 .. 2027-12-31. #}
with series as (

    {{ dbt.generate_series(1461) }}

),

days as (

    select {{ dbt.dateadd('day', 'generated_number - 1', "cast('2024-01-01' as date)") }} as date_day
    from series

),

holidays as (

    select holiday_date from {{ ref('indian_bank_holidays') }}

),

flagged as (

    select
        cast(days.date_day as date) as calendar_date,
        case
            when {{ iso_day_of_week('days.date_day') }} = 7 then false
            when holidays.holiday_date is not null then false
            else true
        end as is_bank_working_day
    from days
    left join holidays on cast(days.date_day as date) = holidays.holiday_date

),

final as (

    select
        calendar_date,
        is_bank_working_day,
        -- working days up to and including this date
        sum(case when is_bank_working_day then 1 else 0 end)
            over (order by calendar_date rows between unbounded preceding and current row)
            as working_day_seq
    from flagged

)

select * from final
