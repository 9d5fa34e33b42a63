-- Every invoice in dunning has exactly one outcome, and every recovery exactly one stage.
select month, currency
from {{ ref('dunning_funnel') }}
where recovered + canceled_by_dunning + marked_unpaid + closed_otherwise + still_open
        <> invoices_in_dunning
   or recovered_before_reminder + recovered_after_reminder + recovered_after_restriction
        <> recovered
   or restricted > invoices_in_dunning
   or reached_final_step > invoices_in_dunning
