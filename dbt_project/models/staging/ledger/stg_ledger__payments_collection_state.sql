-- Grain: one row per invoice collection worked on; the dunning state unpacked from its JSON.
with source as (

    select * from {{ source('raw', 'ledger_payments_collection_state') }}

),

final as (

    select
        cast(invoice_id as bigint) as invoice_id,
        gateway,
        cast(next_retry_at as timestamp) as next_retry_at,
        {{ json_text('dunning_json', 'status') }} as dunning_status,
        {{ iso_timestamp(json_text('dunning_json', 'started_at')) }} as dunning_started_at,
        cast(closed as integer) = 1 as is_closed,
        cast(updated_at as timestamp) as updated_at
    from source

)

select * from final
