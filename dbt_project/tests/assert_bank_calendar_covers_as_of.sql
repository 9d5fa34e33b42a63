-- The settlement SLA counts Indian bank working days from the holiday seed; a run whose
-- as_of date is outside the seeded calendar would silently flag nothing as overdue.
select {{ as_of_date() }} as as_of_date
where not exists (
    select 1 from {{ ref('int_bank_days_numbered') }}
    where calendar_date = {{ as_of_date() }}
)
