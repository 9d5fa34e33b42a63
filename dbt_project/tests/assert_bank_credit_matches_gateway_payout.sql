-- When the gateway reported a payout, the bank credited what the gateway said it paid out.
-- A difference is a business exception (short payment, double credit, missing line) that
-- reconciliation reports line by line, so this warns instead of failing the build.
{{ config(severity='warn') }}

select settlement_id, net_minor, gateway_net_minor
from {{ ref('fct_settlements') }}
where gateway_net_minor is not null and gateway_net_minor <> net_minor
