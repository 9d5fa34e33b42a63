-- Grain: one row per calendar month in which invoice documents were issued (rendered).
with documents as (

    select * from {{ ref('fct_invoice_documents') }}

),

counts as (

    select
        document_month as month,
        count(*) as documents_issued,
        sum(case when delivery_status <> 'not_mailed' then 1 else 0 end) as documents_mailed,
        sum(case when delivery_status = 'sent' then 1 else 0 end) as documents_delivered,
        sum(case when delivery_status = 'failed' then 1 else 0 end) as documents_failed,
        sum(case when delivery_status = 'unknown' then 1 else 0 end) as documents_unknown,
        sum(case when delivery_status = 'pending' then 1 else 0 end) as documents_pending,
        sum(case when delivery_status = 'not_mailed' then 1 else 0 end) as documents_not_mailed,
        sum(resends) as resends,
        count(days_to_pay) as invoices_paid,
        percentile_cont(0.5) within group (order by days_to_pay) as median_days_to_pay
    from documents
    group by document_month

),

final as (

    select
        month,
        documents_issued,
        documents_mailed,
        documents_delivered,
        documents_failed,
        documents_unknown,
        documents_pending,
        documents_not_mailed,
        -- Over settled outcomes only: mail still pending has neither succeeded nor failed yet.
        {{ safe_ratio('documents_delivered',
                      'documents_delivered + documents_failed + documents_unknown') }}
            as delivery_success_rate,
        resends,
        invoices_paid,
        median_days_to_pay
    from counts

)

select * from final
