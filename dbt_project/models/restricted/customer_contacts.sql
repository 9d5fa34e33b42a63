-- Grain: one row per customer. The personal fields the analysts' layers leave out, keyed by
-- both the ledger id and the pseudonymous customer_key, in schema restricted (grant it only to
-- those who contact customers or answer tax and erasure requests).
with source as (

    select * from {{ source('raw', 'ledger_customers') }}

)

select
    cast(id as bigint) as customer_id,
    {{ customer_key('id') }} as customer_key,
    name,
    email,
    address_line,
    city,
    postal_code,
    gstin
from source
