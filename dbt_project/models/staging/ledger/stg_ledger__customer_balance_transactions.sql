with source as (

    select * from {{ source('raw', 'ledger_customer_balance_transactions') }}

),

final as (

    select
        cast(id as bigint) as balance_transaction_id,
        cast(customer_id as bigint) as customer_id,
        upper(currency) as currency,
        cast(amount_minor as bigint) as amount_minor,
        kind,
        cast(invoice_id as bigint) as invoice_id,
        cast(credit_note_id as bigint) as credit_note_id,
        cast(created_at as timestamp) as created_at
    from source

)

select * from final
