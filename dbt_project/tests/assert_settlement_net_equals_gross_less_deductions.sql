-- Settlement net = gross - fee - GST on fee - refunds + adjustments, for every bank settlement.
-- The bank file is an external fact: a short payment breaks this on purpose and reconciliation
-- reports it line by line (amount_mismatch), so a violation warns rather than stopping the build.
-- tests/dbt shows this test failing on a deliberately broken mart.
{{ config(severity='warn') }}

select settlement_id, gross_minor, fee_minor, fee_tax_minor, refunds_minor,
       adjustments_minor, net_minor
from {{ ref('fct_settlements') }}
where net_minor <> gross_minor - fee_minor - fee_tax_minor - refunds_minor + adjustments_minor
