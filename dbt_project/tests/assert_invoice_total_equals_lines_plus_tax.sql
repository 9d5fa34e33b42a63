-- Invoice total = taxable value of its lines + GST (CGST + SGST + IGST), and the header tax
-- equals the lines' tax. Draft invoices may still be edited, so only finalized ones count.
select invoice_id, total_minor, lines_taxable_minor, lines_tax_minor, tax_minor
from {{ ref('fct_invoices') }}
where status <> 'draft'
  and (total_minor <> lines_taxable_minor + lines_tax_minor
       or tax_minor <> lines_tax_minor
       or tax_minor <> cgst_minor + sgst_minor + igst_minor)
