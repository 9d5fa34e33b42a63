with source as (

    select * from {{ source('raw', 'ledger_customers') }}

),

final as (

    select
        cast(id as bigint) as customer_id,
        {{ customer_key('id') }} as customer_key,
        external_ref,
        -- name, email and address stay out of the analysts' layers: restricted.customer_contacts
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
