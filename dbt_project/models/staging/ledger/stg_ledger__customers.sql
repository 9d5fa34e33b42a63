with source as (

    select * from {{ source('raw', 'ledger_customers') }}

),

final as (

    select
        cast(id as bigint) as customer_id,
        external_ref,
        name,
        email,
        address_line,
        city,
        postal_code,
        country,
        state_code,
        gstin,
        tax_status,
        locale,
        upper(currency) as currency,
        cast(created_at as timestamp) as created_at
    from source

)

select * from final
