with source as (

    select * from {{ source('raw', 'ledger_credit_notes') }}

),

final as (

    select
        cast(id as bigint) as credit_note_id,
        cast(invoice_id as bigint) as invoice_id,
        cast(customer_id as bigint) as customer_id,
        number,
        financial_year,
        reason,
        destination,
        upper(currency) as currency,
        cast(taxable_minor as bigint) as taxable_minor,
        cast(cgst_minor as bigint) as cgst_minor,
        cast(sgst_minor as bigint) as sgst_minor,
        cast(igst_minor as bigint) as igst_minor,
        cast(tax_minor as bigint) as tax_minor,
        cast(total_minor as bigint) as total_minor,
        memo,
        cast(issued_at as timestamp) as issued_at
    from source

)

select * from final
