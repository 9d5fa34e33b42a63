"""The ledger schema (SQLAlchemy Core): every table, all on one MetaData (`metadata`), each
created by an Alembic migration in ledger/migrations/versions. The billing tables are defined
here; the operations tables (payments state, gateway events, documents, outbox, alerts) in
`operations_tables` and re-exported. Money is *_minor BIGINT + currency; times are UTC."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from billing_jobs.ledger.columns import NAMING, Id, UTCDateTime, fk, metadata, money, pk, ts
from billing_jobs.ledger.operations_tables import (
    credit_note_documents,
    document_deliveries,
    document_delivery_attachments,
    document_delivery_files,
    invoice_documents,
    ops_alerts,
    payments_collection_state,
    payments_disputes,
    payments_dunning_notifications,
    payments_gateway_customers,
    payments_gateway_events,
    payments_landing_cursors,
    payments_method_details,
    payments_quarantined_events,
    payments_refunds,
)

settings = Table(
    "ledger_settings",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

customers = Table(
    "customers",
    metadata,
    pk(),
    Column("external_ref", String(64), unique=True),
    Column("name", String(200), nullable=False),
    Column("email", String(254)),
    Column("address_line", String(400), nullable=False, server_default=""),
    Column("city", String(100), nullable=False, server_default=""),
    Column("postal_code", String(20), nullable=False, server_default=""),
    Column("country", String(2), nullable=False, server_default="IN"),
    Column("state_code", String(2), nullable=False),
    Column("gstin", String(15)),
    Column("tax_status", String(10), nullable=False, server_default="regular"),
    Column("locale", String(16), nullable=False, server_default="en_IN"),
    Column("currency", String(3), nullable=False),
    ts("created_at"),
    CheckConstraint("tax_status IN ('regular','sez','export')", name="tax_status"),
)

payment_methods = Table(
    "payment_methods",
    metadata,
    pk(),
    fk("customer_id", "customers.id"),
    Column("gateway", String(32), nullable=False),
    Column("gateway_token", String(200), nullable=False),  # a token, never a PAN/CVV/PIN
    Column("kind", String(16), nullable=False),  # card, upi, netbanking, wallet
    Column("label", String(64)),  # e.g. "Visa •••• 4242", from the gateway
    Column("is_default", Boolean, nullable=False, server_default=text("false")),
    Column("mandate_ref", String(100)),
    ts("created_at"),
    ts("removed_at", nullable=True),
    UniqueConstraint("gateway", "gateway_token", name="uq_payment_methods_gateway_token"),
)

products = Table(
    "products",
    metadata,
    pk(),
    Column("code", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("name", String(200), nullable=False),
    Column("sac", String(8), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("is_current", Boolean, nullable=False),
    ts("created_at"),
    UniqueConstraint("code", "version", name="uq_products_code_version"),
)

plans = Table(
    "plans",
    metadata,
    pk(),
    Column("code", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    fk("product_id", "products.id"),
    Column("name", String(200), nullable=False),
    Column("interval", String(8), nullable=False),
    Column("interval_count", Integer, nullable=False),
    Column("trial_days", Integer, nullable=False, server_default=text("0")),
    Column("pricing_model", String(10), nullable=False),
    Column("is_addon", Boolean, nullable=False, server_default=text("false")),
    Column("fingerprint", String(64), nullable=False),
    Column("is_current", Boolean, nullable=False),
    ts("created_at"),
    UniqueConstraint("code", "version", name="uq_plans_code_version"),
    CheckConstraint("interval IN ('month','quarter','year')", name="interval"),
    CheckConstraint("interval_count > 0", name="interval_count"),
)

prices = Table(
    "prices",
    metadata,
    pk(),
    fk("plan_id", "plans.id"),
    Column("currency", String(3), nullable=False),
    Column("unit_amount_minor", BigInteger),
    Column("tiers_json", Text),  # [{"up_to": int|null, "unit_minor": int, "flat_minor": int}]
    UniqueConstraint("plan_id", "currency", name="uq_prices_plan_currency"),
)

coupons = Table(
    "coupons",
    metadata,
    pk(),
    Column("code", String(64), nullable=False, unique=True),
    Column("percent_off_bp", Integer),
    Column("amount_off_minor", BigInteger),
    Column("currency", String(3)),
    Column("duration", String(10), nullable=False),
    Column("duration_in_periods", Integer),
    Column("fingerprint", String(64), nullable=False),
    ts("created_at"),
    CheckConstraint("duration IN ('once','repeating','forever')", name="duration"),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    pk(),
    fk("customer_id", "customers.id"),
    Column("status", String(12), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("interval", String(8), nullable=False),
    Column("interval_count", Integer, nullable=False),
    ts("billing_anchor"),
    Column("period_index", Integer, nullable=False),
    ts("current_period_start"),
    ts("current_period_end"),
    ts("billed_period_start", nullable=True),  # start of the last period invoiced
    ts("trial_end", nullable=True),
    ts("next_action_at"),  # when run_billing next has work for it (indexed)
    Column("cancel_at_period_end", Boolean, nullable=False, server_default=text("false")),
    ts("canceled_at", nullable=True),
    ts("paused_at", nullable=True),
    fk("coupon_id", "coupons.id", nullable=True, index=False),
    Column("coupon_periods_used", Integer, nullable=False, server_default=text("0")),
    Column("pending_change_json", Text),  # change scheduled for the period end
    ts("created_at"),
    CheckConstraint(
        "status IN ('trialing','active','past_due','paused','canceled','unpaid','incomplete')",
        name="status",
    ),
)
Index("ix_subscriptions_due", subscriptions.c.next_action_at, subscriptions.c.status)

subscription_items = Table(
    "subscription_items",
    metadata,
    pk(),
    fk("subscription_id", "subscriptions.id"),
    fk("plan_id", "plans.id", index=False),
    Column("quantity", Integer, nullable=False),
    CheckConstraint("quantity > 0", name="quantity"),
    UniqueConstraint("subscription_id", "plan_id", name="uq_subscription_items_sub_plan"),
)

subscription_events = Table(
    "subscription_events",
    metadata,
    pk(),
    fk("subscription_id", "subscriptions.id"),
    ts("at"),
    Column("kind", String(32), nullable=False),
    Column("from_status", String(12)),
    Column("to_status", String(12)),
    Column("detail_json", Text),
)

invoices = Table(
    "invoices",
    metadata,
    pk(),
    fk("customer_id", "customers.id"),
    fk("subscription_id", "subscriptions.id", nullable=True, index=False),
    Column("kind", String(12), nullable=False),  # recurring, proration, manual
    Column("status", String(14), nullable=False),
    Column("number", String(16), unique=True),
    Column("financial_year", String(4)),
    Column("currency", String(3), nullable=False),
    ts("period_start", nullable=True),
    ts("period_end", nullable=True),
    ts("issued_at"),  # invoice date (tax point); FY and GST rates follow it
    money("subtotal_minor"),
    money("discount_minor"),
    money("taxable_minor"),
    money("cgst_minor"),
    money("sgst_minor"),
    money("igst_minor"),
    money("tax_minor"),
    money("total_minor"),
    money("credit_applied_minor"),
    money("amount_due_minor"),
    money("amount_paid_minor"),
    money("amount_credited_minor"),  # sum of credit notes
    Column("supplier_gstin", String(15)),
    Column("customer_gstin", String(15)),
    Column("place_of_supply", String(2), nullable=False),
    Column("tax_regime", String(10), nullable=False),
    Column("reverse_charge", Boolean, nullable=False, server_default=text("false")),
    ts("finalized_at", nullable=True),
    ts("paid_at", nullable=True),
    ts("voided_at", nullable=True),
    ts("created_at"),
    CheckConstraint("status IN ('draft','open','paid','void','uncollectible')", name="status"),
    CheckConstraint("kind IN ('recurring','proration','manual')", name="kind"),
)
# One recurring invoice per subscription period, whatever crashes or concurrent runs happen.
Index(
    "uq_invoices_recurring_period",
    invoices.c.subscription_id,
    invoices.c.period_start,
    unique=True,
    sqlite_where=text("kind = 'recurring'"),
    postgresql_where=text("kind = 'recurring'"),
)
# Lookups of a subscription's recurring invoice use the partial unique index above; a second
# (subscription_id, period_start) index cost ~10% of bulk-insert time for little gain.
Index("ix_invoices_subscription_id", invoices.c.subscription_id)

invoice_lines = Table(
    "invoice_lines",
    metadata,
    pk(),
    fk("invoice_id", "invoices.id"),
    Column("position", Integer, nullable=False),
    Column("kind", String(12), nullable=False),  # recurring, proration
    Column("description", String(300), nullable=False),
    fk("plan_id", "plans.id", nullable=True, index=False),
    Column("sac", String(8), nullable=False),
    Column("quantity", Integer, nullable=False),
    money("amount_minor"),
    money("discount_minor"),
    money("taxable_minor"),
    Column("tax_rate_bp", Integer, nullable=False),
    money("cgst_minor"),
    money("sgst_minor"),
    money("igst_minor"),
    ts("period_start", nullable=True),
    ts("period_end", nullable=True),
)

credit_notes = Table(
    "credit_notes",
    metadata,
    pk(),
    fk("invoice_id", "invoices.id"),
    fk("customer_id", "customers.id", index=False),
    Column("number", String(16), nullable=False, unique=True),
    Column("financial_year", String(4), nullable=False),
    Column("reason", String(32), nullable=False),  # downgrade, cancellation, refund, pause...
    Column("destination", String(16), nullable=False),  # credit_balance or refund
    Column("currency", String(3), nullable=False),
    money("taxable_minor"),
    money("cgst_minor"),
    money("sgst_minor"),
    money("igst_minor"),
    money("tax_minor"),
    money("total_minor"),
    Column("memo", String(300)),
    ts("issued_at"),
)

credit_note_lines = Table(
    "credit_note_lines",
    metadata,
    pk(),
    fk("credit_note_id", "credit_notes.id"),
    fk("invoice_line_id", "invoice_lines.id", nullable=True, index=False),
    Column("description", String(300), nullable=False),
    Column("sac", String(8), nullable=False),
    money("taxable_minor"),
    Column("tax_rate_bp", Integer, nullable=False),
    money("cgst_minor"),
    money("sgst_minor"),
    money("igst_minor"),
    # Value before discount and the discount reversed with it (taxable = amount - discount),
    # so a credit note shows how its taxable value was reached, as the invoice does.
    money("amount_minor"),
    money("discount_minor"),
)

# What each item in force was charged for a billing period, at the price actually charged
# (list amount, its share of the period's discount, taxable value, all for the whole period).
# A recurring invoice opens one row per line; a prorated change closes the changed items' rows
# and opens rows for their replacements; pause and cancel close the rest. Credits for unused
# time are always computed from the open rows, so each second is credited at most once.
subscription_charges = Table(
    "subscription_charges",
    metadata,
    pk(),
    fk("subscription_id", "subscriptions.id"),
    fk("plan_id", "plans.id", index=False),
    Column("quantity", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    ts("period_start"),
    ts("period_end"),
    ts("charged_from"),  # the period start, or the instant of the change that added it
    ts("credited_from", nullable=True),  # null while in force; else unused time from here on
    money("amount_minor"),
    money("discount_minor"),
    money("taxable_minor"),
    Column("tax_rate_bp", Integer, nullable=False),
    fk("invoice_id", "invoices.id", nullable=True, index=False),  # the period's charge
    fk("invoice_line_id", "invoice_lines.id", nullable=True, index=False),
    fk("credit_invoice_id", "invoices.id", nullable=True, index=False),  # where unused time
    fk("credit_note_id", "credit_notes.id", nullable=True, index=False),  # was credited
)
Index(
    "ix_subscription_charges_in_force",
    subscription_charges.c.subscription_id,
    subscription_charges.c.period_start,
    subscription_charges.c.credited_from,
)

customer_balance_transactions = Table(
    "customer_balance_transactions",
    metadata,
    pk(),
    fk("customer_id", "customers.id"),
    Column("currency", String(3), nullable=False),
    # Positive = credit granted to the customer, negative = credit consumed by an invoice.
    money("amount_minor", default=False),
    Column("kind", String(24), nullable=False),
    fk("invoice_id", "invoices.id", nullable=True, index=False),
    fk("credit_note_id", "credit_notes.id", nullable=True, index=False),
    ts("created_at"),
)

payment_attempts = Table(
    "payment_attempts",
    metadata,
    pk(),
    fk("invoice_id", "invoices.id"),
    Column("attempt_number", Integer, nullable=False),
    Column("idempotency_key", String(128), nullable=False, unique=True),
    Column("status", String(10), nullable=False),
    Column("gateway", String(32), nullable=False),
    Column("gateway_payment_id", String(128)),
    money("amount_minor", default=False),
    Column("currency", String(3), nullable=False),
    Column("decline_code", String(64)),
    ts("created_at"),
    ts("finalized_at", nullable=True),
    CheckConstraint("status IN ('pending','succeeded','failed','unknown')", name="status"),
    UniqueConstraint("invoice_id", "attempt_number", name="uq_payment_attempts_invoice_attempt"),
)

idempotency_records = Table(
    "idempotency_records",
    metadata,
    Column("key", String(128), primary_key=True),
    Column("scope", String(64), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("response_json", Text, nullable=False),
    ts("created_at"),
)

invoice_sequences = Table(
    "invoice_sequences",
    metadata,
    Column("series", String(4), primary_key=True),  # INV, CN
    Column("financial_year", String(4), primary_key=True),
    Column("last_value", BigInteger, nullable=False),
)

# A customer's erasure (`paysight customers erase`): when and which fields were pseudonymized or
# removed, never the old values. Append-only: one row per erased customer.
customer_erasures = Table(
    "customer_erasures",
    metadata,
    pk(),
    fk("customer_id", "customers.id", index=False),
    ts("erased_at"),
    Column("fields", Text, nullable=False),  # "table.column" names, comma-separated
    UniqueConstraint("customer_id", name="uq_customer_erasures_customer_id"),
)

__all__ = [
    "NAMING",
    "Id",
    "UTCDateTime",
    "coupons",
    "credit_note_documents",
    "credit_note_lines",
    "credit_notes",
    "customer_balance_transactions",
    "customer_erasures",
    "customers",
    "document_deliveries",
    "document_delivery_attachments",
    "document_delivery_files",
    "idempotency_records",
    "invoice_documents",
    "invoice_lines",
    "invoice_sequences",
    "invoices",
    "metadata",
    "ops_alerts",
    "payment_attempts",
    "payment_methods",
    "payments_collection_state",
    "payments_disputes",
    "payments_dunning_notifications",
    "payments_gateway_customers",
    "payments_gateway_events",
    "payments_landing_cursors",
    "payments_method_details",
    "payments_quarantined_events",
    "payments_refunds",
    "plans",
    "prices",
    "products",
    "settings",
    "subscription_charges",
    "subscription_events",
    "subscription_items",
    "subscriptions",
]
