-- Grain: one row per invoice with a rendered document: how its mail went, and days to pay.
with documents as (

    select * from {{ ref('stg_ledger__invoice_documents') }}

),

invoices as (

    select * from {{ ref('fct_invoices') }}

),

deliveries as (

    select * from {{ ref('stg_ledger__document_deliveries') }}

),

-- The first delivery queued for a document; resends copy its template, so it names the mail.
originals as (

    select
        document_number,
        template_key,
        row_number() over (
            partition by document_number order by created_at, delivery_id
        ) as queue_rank
    from deliveries
    where resend_of_delivery_id is null

),

per_document as (

    select
        document_number,
        count(*) as deliveries,
        sum(case when resend_of_delivery_id is not null then 1 else 0 end) as resends,
        sum(attempts) as attempts,
        sum(case when status = 'sent' then 1 else 0 end) as sent_deliveries,
        sum(case when status in ('queued', 'sending') then 1 else 0 end) as pending_deliveries,
        sum(case when status = 'unknown' then 1 else 0 end) as unknown_deliveries,
        min(created_at) as first_queued_at,
        min(sent_at) as first_sent_at
    from deliveries
    group by document_number

),

final as (

    select
        documents.invoice_id,
        documents.invoice_number,
        invoices.customer_id,
        invoices.currency,
        invoices.total_minor,
        invoices.status as invoice_status,
        invoices.issued_at,
        documents.rendered_at,
        {{ month_of('documents.rendered_at') }} as document_month,
        documents.document_lang,
        originals.template_key,
        -- One delivery that reached the relay is enough; otherwise the most hopeful state wins
        -- (a resend still queued beats the original's failure).
        case
            when per_document.document_number is null then 'not_mailed'
            when per_document.sent_deliveries > 0 then 'sent'
            when per_document.pending_deliveries > 0 then 'pending'
            when per_document.unknown_deliveries > 0 then 'unknown'
            else 'failed'
        end as delivery_status,
        coalesce(per_document.deliveries, 0) as deliveries,
        coalesce(per_document.attempts, 0) as attempts,
        coalesce(per_document.resends, 0) as resends,
        per_document.first_queued_at,
        per_document.first_sent_at,
        invoices.paid_at,
        invoices.days_to_pay
    from documents
    left join invoices on documents.invoice_id = invoices.invoice_id
    left join per_document on documents.invoice_number = per_document.document_number
    left join originals
        on documents.invoice_number = originals.document_number and originals.queue_rank = 1

)

select * from final
