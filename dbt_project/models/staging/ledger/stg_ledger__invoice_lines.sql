with source as (

    select * from {{ source('raw', 'ledger_invoice_lines') }}

),

final as (

    select
        cast(id as bigint) as invoice_line_id,
        cast(invoice_id as bigint) as invoice_id,
        cast(position as integer) as position,
        kind as line_kind,
        description,
        cast(plan_id as bigint) as plan_id,
        sac,
        cast(quantity as integer) as quantity,
        cast(amount_minor as bigint) as amount_minor,
        cast(discount_minor as bigint) as discount_minor,
        cast(taxable_minor as bigint) as taxable_minor,
        cast(tax_rate_bp as integer) as tax_rate_bp,
        cast(cgst_minor as bigint) as cgst_minor,
        cast(sgst_minor as bigint) as sgst_minor,
        cast(igst_minor as bigint) as igst_minor,
        cast(period_start as timestamp) as period_start,
        cast(period_end as timestamp) as period_end
    from source

)

select * from final
