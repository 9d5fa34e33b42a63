with source as (

    select * from {{ source('raw', 'ledger_invoices') }}

),

final as (

    select
        cast(id as bigint) as invoice_id,
        cast(customer_id as bigint) as customer_id,
        cast(subscription_id as bigint) as subscription_id,
        kind as invoice_kind,
        status,
        number,
        financial_year,
        upper(currency) as currency,
        cast(period_start as timestamp) as period_start,
        cast(period_end as timestamp) as period_end,
        cast(issued_at as timestamp) as issued_at,
        cast(subtotal_minor as bigint) as subtotal_minor,
        cast(discount_minor as bigint) as discount_minor,
        cast(taxable_minor as bigint) as taxable_minor,
        cast(cgst_minor as bigint) as cgst_minor,
        cast(sgst_minor as bigint) as sgst_minor,
        cast(igst_minor as bigint) as igst_minor,
        cast(tax_minor as bigint) as tax_minor,
        cast(total_minor as bigint) as total_minor,
        cast(credit_applied_minor as bigint) as credit_applied_minor,
        cast(amount_due_minor as bigint) as amount_due_minor,
        cast(amount_paid_minor as bigint) as amount_paid_minor,
        cast(amount_credited_minor as bigint) as amount_credited_minor,
        supplier_gstin,
        customer_gstin,
        place_of_supply,
        tax_regime,
        reverse_charge,
        cast(finalized_at as timestamp) as finalized_at,
        cast(paid_at as timestamp) as paid_at,
        cast(voided_at as timestamp) as voided_at,
        cast(created_at as timestamp) as created_at
    from source

)

select * from final
