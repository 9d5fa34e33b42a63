-- Grain: one row per mail delivery (a resend is its own row, linked by resend_of_delivery_id).
-- The recipient address is left in raw: no model needs it.
with source as (

    select * from {{ source('raw', 'ledger_document_deliveries') }}

),

final as (

    select
        cast(id as bigint) as delivery_id,
        kind as document_kind,
        template_key,
        document_number,
        lower(lang) as mail_lang,
        message_id,
        status,
        cast(attempts as integer) as attempts,
        cast(next_attempt_at as timestamp) as next_attempt_at,
        cast(claimed_at as timestamp) as claimed_at,
        last_error,
        cast(created_at as timestamp) as created_at,
        cast(sent_at as timestamp) as sent_at,
        cast(resend_of as bigint) as resend_of_delivery_id
    from source

)

select * from final
