-- Grain: one row per month of invoice date, currency, GST rate and place of supply; sums of
-- finalized invoice lines (draft and void invoices carry no tax liability).
with invoices as (

    select invoice_id, currency, issued_at, place_of_supply
    from {{ ref('stg_ledger__invoices') }}
    where status in ('open', 'paid', 'uncollectible')

),

lines as (

    select * from {{ ref('stg_ledger__invoice_lines') }}

),

final as (

    select
        {{ month_of('invoices.issued_at') }} as month,
        invoices.currency,
        lines.tax_rate_bp,
        invoices.place_of_supply,
        count(distinct invoices.invoice_id) as invoice_count,
        sum(lines.taxable_minor) as taxable_value_minor,
        sum(lines.cgst_minor) as cgst_minor,
        sum(lines.sgst_minor) as sgst_minor,
        sum(lines.igst_minor) as igst_minor,
        sum(lines.cgst_minor + lines.sgst_minor + lines.igst_minor) as tax_minor
    from lines
    inner join invoices on lines.invoice_id = invoices.invoice_id
    group by 1, 2, 3, 4

)

select * from final
