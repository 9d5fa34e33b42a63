-- Grain: one row per month a dunning process started (the invoice's first failed payment) and
-- currency: how many invoices entered dunning, how far the dunning process went (reminded,
-- restricted, its final step) and how each ended. Read from the dunning state itself
-- (payments_collection_state) and the notifications the dunning run recorded.
with states as (

    select invoice_id, dunning_status, dunning_started_at
    from {{ ref('stg_ledger__payments_collection_state') }}
    where dunning_started_at is not null

),

invoices as (

    select invoice_id, currency, status from {{ ref('stg_ledger__invoices') }}

),

steps as (

    select
        invoice_id,
        count(*) as notifications,
        sum(case when notification_kind = 'remind' then 1 else 0 end) as reminders,
        max(case when notification_kind = 'restrict' then 1 else 0 end) as was_restricted,
        max(case when notification_kind in ('cancel', 'mark_unpaid') then 1 else 0 end)
            as reached_final
    from {{ ref('stg_ledger__payments_dunning_notifications') }}
    group by invoice_id

),

processes as (

    select
        states.invoice_id,
        invoices.currency,
        {{ month_of('states.dunning_started_at') }} as month,
        coalesce(steps.notifications, 0) as notifications,
        coalesce(steps.reminders, 0) as reminders,
        coalesce(steps.was_restricted, 0) as was_restricted,
        coalesce(steps.reached_final, 0) as reached_final,
        case
            -- paid is paid, even after the dunning run last looked (it records "recovered"
            -- on its next pass)
            when states.dunning_status = 'recovered' or invoices.status = 'paid' then 'recovered'
            when states.dunning_status = 'unpaid' then 'marked_unpaid'
            when states.dunning_status = 'canceled' and coalesce(steps.reached_final, 0) = 1
                then 'canceled_by_dunning'
            -- voided or written off some other way; dunning stopped without a word
            when states.dunning_status = 'canceled' then 'closed_otherwise'
            else 'still_open'
        end as outcome
    from states
    inner join invoices on states.invoice_id = invoices.invoice_id
    left join steps on states.invoice_id = steps.invoice_id

),

final as (

    select
        month,
        currency,
        count(*) as invoices_in_dunning,
        sum(case when reminders > 0 then 1 else 0 end) as reminded,
        sum(was_restricted) as restricted,
        sum(reached_final) as reached_final_step,
        sum(case when outcome = 'recovered' then 1 else 0 end) as recovered,
        sum(case when outcome = 'recovered' and reminders = 0 then 1 else 0 end)
            as recovered_before_reminder,
        sum(case when outcome = 'recovered' and reminders > 0 and was_restricted = 0
                 then 1 else 0 end) as recovered_after_reminder,
        sum(case when outcome = 'recovered' and was_restricted = 1 then 1 else 0 end)
            as recovered_after_restriction,
        sum(case when outcome = 'canceled_by_dunning' then 1 else 0 end) as canceled_by_dunning,
        sum(case when outcome = 'marked_unpaid' then 1 else 0 end) as marked_unpaid,
        sum(case when outcome = 'closed_otherwise' then 1 else 0 end) as closed_otherwise,
        sum(case when outcome = 'still_open' then 1 else 0 end) as still_open,
        sum(notifications) as notifications,
        {{ safe_ratio("sum(case when outcome = 'recovered' then 1 else 0 end)", 'count(*)') }}
            as recovery_rate
    from processes
    group by month, currency

)

select * from final
