-- A gateway never keeps more than it captured: fee + GST on fee <= amount, and failed
-- attempts carry no fee.
select payment_id, amount_minor, fee_minor, fee_tax_minor, status
from {{ ref('fct_payments') }}
where fee_minor + fee_tax_minor > amount_minor
   or fee_minor < 0
   or fee_tax_minor < 0
   or (status = 'failed' and fee_minor <> 0)
