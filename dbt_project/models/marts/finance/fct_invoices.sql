-- Grain: one row per invoice, with its lines and credit notes summed and what is still owed.
with invoices as (

    select * from {{ ref('stg_ledger__invoices') }}

),

lines as (

    select
        invoice_id,
        count(*) as line_count,
        sum(taxable_minor) as lines_taxable_minor,
        sum(cgst_minor + sgst_minor + igst_minor) as lines_tax_minor
    from {{ ref('stg_ledger__invoice_lines') }}
    group by invoice_id

),

credits as (

    select invoice_id, sum(total_minor) as credit_notes_total_minor
    from {{ ref('stg_ledger__credit_notes') }}
    group by invoice_id

),

final as (

    select
        invoices.invoice_id,
        invoices.number as invoice_number,
        invoices.financial_year,
        invoices.customer_id,
        invoices.subscription_id,
        invoices.invoice_kind,
        invoices.status,
        invoices.currency,
        invoices.issued_at,
        {{ month_of('invoices.issued_at') }} as issued_month,
        invoices.period_start,
        invoices.period_end,
        invoices.subtotal_minor,
        invoices.discount_minor,
        invoices.taxable_minor,
        invoices.cgst_minor,
        invoices.sgst_minor,
        invoices.igst_minor,
        invoices.tax_minor,
        invoices.total_minor,
        invoices.credit_applied_minor,
        invoices.amount_due_minor,
        invoices.amount_paid_minor,
        invoices.amount_credited_minor,
        coalesce(credits.credit_notes_total_minor, 0) as credit_notes_total_minor,
        case when invoices.status in ('open', 'uncollectible')
             then invoices.amount_due_minor - invoices.amount_paid_minor else 0
        end as amount_outstanding_minor,
        coalesce(lines.line_count, 0) as line_count,
        coalesce(lines.lines_taxable_minor, 0) as lines_taxable_minor,
        coalesce(lines.lines_tax_minor, 0) as lines_tax_minor,
        invoices.place_of_supply,
        invoices.tax_regime,
        invoices.reverse_charge,
        invoices.supplier_gstin,
        invoices.customer_gstin,
        invoices.finalized_at,
        invoices.paid_at,
        invoices.voided_at,
        case when invoices.paid_at is not null
             then {{ dbt.datediff('invoices.issued_at', 'invoices.paid_at', 'day') }}
        end as days_to_pay
    from invoices
    left join lines on invoices.invoice_id = lines.invoice_id
    left join credits on invoices.invoice_id = credits.invoice_id

)

select * from final
