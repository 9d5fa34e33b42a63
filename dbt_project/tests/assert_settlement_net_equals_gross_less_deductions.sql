-- Settlement net = gross - fee - GST on fee - refunds + adjustments, and, when the gateway
-- reported the settlement, the bank credited what the gateway said it paid out.
select settlement_id, gross_minor, fee_minor, fee_tax_minor, refunds_minor,
       adjustments_minor, net_minor, gateway_net_minor
from {{ ref('fct_settlements') }}
where net_minor <> gross_minor - fee_minor - fee_tax_minor - refunds_minor + adjustments_minor
   or (gateway_net_minor is not null and gateway_net_minor <> net_minor)
