-- Grain: one row per invoice with a rendered, stored document.
with source as (

    select * from {{ source('raw', 'ledger_invoice_documents') }}

),

final as (

    select
        cast(invoice_id as bigint) as invoice_id,
        number as invoice_number,
        path as document_path,
        sha256 as document_sha256,
        lower(lang) as document_lang,
        cast(rendered_at as timestamp) as rendered_at
    from source

)

select * from final
