with source as (

    select * from {{ source('raw', 'bank_settlements') }}

),

final as (

    select
        {{ dbt.concat(["settlement_id", "':'", "payment_id", "':'",
                       dbt.safe_cast("line_number", dbt.type_string())]) }} as bank_line_key,
        settlement_id,
        utr,
        payment_id as gateway_payment_id,
        cast(gross_minor as bigint) as gross_minor,
        cast(fee_minor as bigint) as fee_minor,
        cast(tax_minor as bigint) as fee_tax_minor,
        cast(net_minor as bigint) as net_minor,
        upper(currency) as currency,
        cast(settled_at as timestamp) as settled_at,
        cast(line_number as integer) as line_number
    from source

)

select * from final
