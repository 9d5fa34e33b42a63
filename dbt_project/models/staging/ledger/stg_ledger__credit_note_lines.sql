with source as (

    select * from {{ source('raw', 'ledger_credit_note_lines') }}

),

final as (

    select
        cast(id as bigint) as credit_note_line_id,
        cast(credit_note_id as bigint) as credit_note_id,
        cast(invoice_line_id as bigint) as invoice_line_id,
        description,
        sac,
        cast(taxable_minor as bigint) as taxable_minor,
        cast(tax_rate_bp as integer) as tax_rate_bp,
        cast(cgst_minor as bigint) as cgst_minor,
        cast(sgst_minor as bigint) as sgst_minor,
        cast(igst_minor as bigint) as igst_minor
    from source

)

select * from final
