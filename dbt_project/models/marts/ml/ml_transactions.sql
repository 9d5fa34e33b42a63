-- Grain: one row per gateway charge (payment attempt), in the shape ml.anomaly expects:
-- transaction_id, customer_id ('unlinked' when the gateway knows no ledger customer for the
-- charge), instrument_id (method and issuer: gateways give no instrument id we may keep),
-- amount_minor, created_at, plan_amount_minor (the customer's latest recurring invoice
-- before the charge) and fraud_disputed (a dispute with reason fraudulent: the only fraud
-- label the platform itself ever learns).
with payments as (

    select
        payment_id, gateway, gateway_payment_id, customer_id, method, issuer, status,
        amount_minor, currency, created_at, invoice_id
    from {{ ref('fct_payments') }}

),

recurring as (

    select customer_id, finalized_at, taxable_minor
    from {{ ref('stg_ledger__invoices') }}
    where invoice_kind = 'recurring' and finalized_at is not null

),

plan_amounts as (

    select payment_id, plan_amount_minor
    from (
        select
            payments.payment_id,
            recurring.taxable_minor as plan_amount_minor,
            row_number() over (
                partition by payments.payment_id order by recurring.finalized_at desc
            ) as recency
        from payments
        inner join recurring
            on cast(recurring.customer_id as {{ dbt.type_string() }})
                = cast(payments.customer_id as {{ dbt.type_string() }})
            and recurring.finalized_at <= payments.created_at
    ) as ranked
    where recency = 1

),

disputes as (

    select gateway_payment_id, max(case when reason = 'fraudulent' then 1 else 0 end) as fraud
    from {{ ref('stg_gateway__disputes') }}
    group by gateway_payment_id

),

final as (

    select
        payments.payment_id as transaction_id,
        coalesce(cast(payments.customer_id as {{ dbt.type_string() }}), 'unlinked')
            as customer_id,
        {{ dbt.concat(["coalesce(payments.method, 'unknown')", "':'",
                       "coalesce(payments.issuer, 'unknown')"]) }} as instrument_id,
        payments.amount_minor,
        payments.currency,
        payments.status,
        payments.created_at,
        payments.invoice_id,
        plan_amounts.plan_amount_minor,
        coalesce(disputes.fraud, 0) as fraud_disputed
    from payments
    left join plan_amounts on payments.payment_id = plan_amounts.payment_id
    left join disputes on payments.gateway_payment_id = disputes.gateway_payment_id

)

select * from final
