"""Ledger tables (SQLAlchemy Core). Money is *_minor BIGINT + currency; times are UTC."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

# SQLite only auto-increments an INTEGER PRIMARY KEY; Postgres gets BIGINT identity.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator):
    """Stores naive UTC, returns aware UTC; refuses naive input so no local time sneaks in."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):  # type: ignore[no-untyped-def]
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} cannot be stored in the ledger")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value, dialect):  # type: ignore[no-untyped-def]
        if value is None:
            return None
        if isinstance(value, str):  # raw SQL paths on SQLite
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _pk() -> Column:
    return Column("id", Id, primary_key=True, autoincrement=True)


def _fk(name: str, target: str, nullable: bool = False, index: bool = True) -> Column:
    return Column(name, Id, ForeignKey(target), nullable=nullable, index=index)


def _money(name: str, default: bool = True) -> Column:
    return Column(name, BigInteger, nullable=False, server_default=text("0") if default else None)


def _ts(name: str, nullable: bool = False) -> Column:
    return Column(name, UTCDateTime(), nullable=nullable)


settings = Table(
    "ledger_settings",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

customers = Table(
    "customers",
    metadata,
    _pk(),
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
    _ts("created_at"),
    CheckConstraint("tax_status IN ('regular','sez','export')", name="tax_status"),
)

payment_methods = Table(
    "payment_methods",
    metadata,
    _pk(),
    _fk("customer_id", "customers.id"),
    Column("gateway", String(32), nullable=False),
    Column("gateway_token", String(200), nullable=False),  # a token, never a PAN/CVV/PIN
    Column("kind", String(16), nullable=False),  # card, upi, netbanking, wallet
    Column("label", String(64)),  # e.g. "Visa •••• 4242", from the gateway
    Column("is_default", Boolean, nullable=False, server_default=text("false")),
    Column("mandate_ref", String(100)),
    _ts("created_at"),
    _ts("removed_at", nullable=True),
    UniqueConstraint("gateway", "gateway_token", name="uq_payment_methods_gateway_token"),
)

products = Table(
    "products",
    metadata,
    _pk(),
    Column("code", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("name", String(200), nullable=False),
    Column("sac", String(8), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("is_current", Boolean, nullable=False),
    _ts("created_at"),
    UniqueConstraint("code", "version", name="uq_products_code_version"),
)

plans = Table(
    "plans",
    metadata,
    _pk(),
    Column("code", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    _fk("product_id", "products.id"),
    Column("name", String(200), nullable=False),
    Column("interval", String(8), nullable=False),
    Column("interval_count", Integer, nullable=False),
    Column("trial_days", Integer, nullable=False, server_default=text("0")),
    Column("pricing_model", String(10), nullable=False),
    Column("is_addon", Boolean, nullable=False, server_default=text("false")),
    Column("fingerprint", String(64), nullable=False),
    Column("is_current", Boolean, nullable=False),
    _ts("created_at"),
    UniqueConstraint("code", "version", name="uq_plans_code_version"),
    CheckConstraint("interval IN ('month','quarter','year')", name="interval"),
    CheckConstraint("interval_count > 0", name="interval_count"),
)

prices = Table(
    "prices",
    metadata,
    _pk(),
    _fk("plan_id", "plans.id"),
    Column("currency", String(3), nullable=False),
    Column("unit_amount_minor", BigInteger),
    Column("tiers_json", Text),  # [{"up_to": int|null, "unit_minor": int, "flat_minor": int}]
    UniqueConstraint("plan_id", "currency", name="uq_prices_plan_currency"),
)

coupons = Table(
    "coupons",
    metadata,
    _pk(),
    Column("code", String(64), nullable=False, unique=True),
    Column("percent_off_bp", Integer),
    Column("amount_off_minor", BigInteger),
    Column("currency", String(3)),
    Column("duration", String(10), nullable=False),
    Column("duration_in_periods", Integer),
    Column("fingerprint", String(64), nullable=False),
    _ts("created_at"),
    CheckConstraint("duration IN ('once','repeating','forever')", name="duration"),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    _pk(),
    _fk("customer_id", "customers.id"),
    Column("status", String(12), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("interval", String(8), nullable=False),
    Column("interval_count", Integer, nullable=False),
    _ts("billing_anchor"),
    Column("period_index", Integer, nullable=False),
    _ts("current_period_start"),
    _ts("current_period_end"),
    _ts("billed_period_start", nullable=True),  # start of the last period invoiced
    _ts("trial_end", nullable=True),
    _ts("next_action_at"),  # when run_billing next has work for it (indexed)
    Column("cancel_at_period_end", Boolean, nullable=False, server_default=text("false")),
    _ts("canceled_at", nullable=True),
    _ts("paused_at", nullable=True),
    _fk("coupon_id", "coupons.id", nullable=True, index=False),
    Column("coupon_periods_used", Integer, nullable=False, server_default=text("0")),
    Column("pending_change_json", Text),  # change scheduled for the period end
    _ts("created_at"),
    CheckConstraint(
        "status IN ('trialing','active','past_due','paused','canceled','unpaid','incomplete')",
        name="status",
    ),
)
Index("ix_subscriptions_due", subscriptions.c.next_action_at, subscriptions.c.status)

subscription_items = Table(
    "subscription_items",
    metadata,
    _pk(),
    _fk("subscription_id", "subscriptions.id"),
    _fk("plan_id", "plans.id", index=False),
    Column("quantity", Integer, nullable=False),
    CheckConstraint("quantity > 0", name="quantity"),
    UniqueConstraint("subscription_id", "plan_id", name="uq_subscription_items_sub_plan"),
)

subscription_events = Table(
    "subscription_events",
    metadata,
    _pk(),
    _fk("subscription_id", "subscriptions.id"),
    _ts("at"),
    Column("kind", String(32), nullable=False),
    Column("from_status", String(12)),
    Column("to_status", String(12)),
    Column("detail_json", Text),
)

invoices = Table(
    "invoices",
    metadata,
    _pk(),
    _fk("customer_id", "customers.id"),
    _fk("subscription_id", "subscriptions.id", nullable=True, index=False),
    Column("kind", String(12), nullable=False),  # recurring, proration, manual
    Column("status", String(14), nullable=False),
    Column("number", String(16), unique=True),
    Column("financial_year", String(4)),
    Column("currency", String(3), nullable=False),
    _ts("period_start", nullable=True),
    _ts("period_end", nullable=True),
    _ts("issued_at"),  # invoice date (tax point); FY and GST rates follow it
    _money("subtotal_minor"),
    _money("discount_minor"),
    _money("taxable_minor"),
    _money("cgst_minor"),
    _money("sgst_minor"),
    _money("igst_minor"),
    _money("tax_minor"),
    _money("total_minor"),
    _money("credit_applied_minor"),
    _money("amount_due_minor"),
    _money("amount_paid_minor"),
    _money("amount_credited_minor"),  # sum of credit notes
    Column("supplier_gstin", String(15)),
    Column("customer_gstin", String(15)),
    Column("place_of_supply", String(2), nullable=False),
    Column("tax_regime", String(10), nullable=False),
    Column("reverse_charge", Boolean, nullable=False, server_default=text("false")),
    _ts("finalized_at", nullable=True),
    _ts("paid_at", nullable=True),
    _ts("voided_at", nullable=True),
    _ts("created_at"),
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
    _pk(),
    _fk("invoice_id", "invoices.id"),
    Column("position", Integer, nullable=False),
    Column("kind", String(12), nullable=False),  # recurring, proration
    Column("description", String(300), nullable=False),
    _fk("plan_id", "plans.id", nullable=True, index=False),
    Column("sac", String(8), nullable=False),
    Column("quantity", Integer, nullable=False),
    _money("amount_minor"),
    _money("discount_minor"),
    _money("taxable_minor"),
    Column("tax_rate_bp", Integer, nullable=False),
    _money("cgst_minor"),
    _money("sgst_minor"),
    _money("igst_minor"),
    _ts("period_start", nullable=True),
    _ts("period_end", nullable=True),
)

credit_notes = Table(
    "credit_notes",
    metadata,
    _pk(),
    _fk("invoice_id", "invoices.id"),
    _fk("customer_id", "customers.id", index=False),
    Column("number", String(16), nullable=False, unique=True),
    Column("financial_year", String(4), nullable=False),
    Column("reason", String(32), nullable=False),  # downgrade, cancellation, refund, pause...
    Column("destination", String(16), nullable=False),  # credit_balance or refund
    Column("currency", String(3), nullable=False),
    _money("taxable_minor"),
    _money("cgst_minor"),
    _money("sgst_minor"),
    _money("igst_minor"),
    _money("tax_minor"),
    _money("total_minor"),
    Column("memo", String(300)),
    _ts("issued_at"),
)

credit_note_lines = Table(
    "credit_note_lines",
    metadata,
    _pk(),
    _fk("credit_note_id", "credit_notes.id"),
    _fk("invoice_line_id", "invoice_lines.id", nullable=True, index=False),
    Column("description", String(300), nullable=False),
    Column("sac", String(8), nullable=False),
    _money("taxable_minor"),
    Column("tax_rate_bp", Integer, nullable=False),
    _money("cgst_minor"),
    _money("sgst_minor"),
    _money("igst_minor"),
)

customer_balance_transactions = Table(
    "customer_balance_transactions",
    metadata,
    _pk(),
    _fk("customer_id", "customers.id"),
    Column("currency", String(3), nullable=False),
    # Positive = credit granted to the customer, negative = credit consumed by an invoice.
    _money("amount_minor", default=False),
    Column("kind", String(24), nullable=False),
    _fk("invoice_id", "invoices.id", nullable=True, index=False),
    _fk("credit_note_id", "credit_notes.id", nullable=True, index=False),
    _ts("created_at"),
)

payment_attempts = Table(
    "payment_attempts",
    metadata,
    _pk(),
    _fk("invoice_id", "invoices.id"),
    Column("attempt_number", Integer, nullable=False),
    Column("idempotency_key", String(128), nullable=False, unique=True),
    Column("status", String(10), nullable=False),
    Column("gateway", String(32), nullable=False),
    Column("gateway_payment_id", String(128)),
    _money("amount_minor", default=False),
    Column("currency", String(3), nullable=False),
    Column("decline_code", String(64)),
    _ts("created_at"),
    _ts("finalized_at", nullable=True),
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
    _ts("created_at"),
)

invoice_sequences = Table(
    "invoice_sequences",
    metadata,
    Column("series", String(4), primary_key=True),  # INV, CN
    Column("financial_year", String(4), primary_key=True),
    Column("last_value", BigInteger, nullable=False),
)


# -- operations: payments state, gateway events, documents, the mail outbox, alerts ---------------
# These tables were created on first use before migrations 0002 (documents, outbox) and 0003 (the
# rest); the migrations create them the same way where missing. Unique constraints carry the
# names PostgreSQL gave them then, so ledgers from before and after the migrations compare equal.

payments_gateway_customers = Table(
    "payments_gateway_customers",
    metadata,
    Column("customer_id", Integer, primary_key=True),
    Column("gateway", String(32), primary_key=True),
    Column("gateway_customer_id", String(128), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

payments_method_details = Table(
    "payments_method_details",
    metadata,
    Column("payment_method_id", Integer, primary_key=True),
    Column("brand", String(32)),
    Column("last4", String(4)),
    Column("exp_month", Integer),
    Column("exp_year", Integer),
    Column("issuer", String(64)),
    Column("max_amount_minor", BigInteger),
)

payments_collection_state = Table(
    "payments_collection_state",
    metadata,
    Column("invoice_id", Integer, primary_key=True),
    Column("gateway", String(32), nullable=False),
    Column("next_retry_at", UTCDateTime(), nullable=True),
    Column("dunning_json", Text),  # the DunningState once a payment failed
    Column("closed", Integer, nullable=False, default=0),  # paid, canceled or written off
    Column("updated_at", UTCDateTime(), nullable=False),
    # The charge in flight: the attempt recorded before the gateway call, cleared in the
    # transaction that finalizes it. Set only while that attempt is unresolved (0004).
    Column("claim_attempt_id", Integer),
    Column("claimed_at", UTCDateTime()),
    # The method whose hard (or customer-action) decline is never retried automatically.
    Column("declined_token", String(128)),
    Column("declined_code", String(64)),
)

payments_dunning_notifications = Table(
    "payments_dunning_notifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("invoice_id", Integer, nullable=False),
    Column("customer_id", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("template_key", String(64), nullable=False),
    Column("due_at", UTCDateTime(), nullable=False),
    Column("next_retry_at", UTCDateTime(), nullable=True),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("mail_delivery_id", Integer),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("invoice_id", "kind", "due_at", name="uq_payments_dunning_once"),
)

payments_refunds = Table(
    "payments_refunds",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("invoice_id", Integer, nullable=False),
    Column("gateway", String(32), nullable=False),
    Column("gateway_payment_id", String(128), nullable=False),
    Column("gateway_refund_id", String(128), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("credit_note_id", Integer),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("gateway_refund_id", name="payments_refunds_gateway_refund_id_key"),
)

payments_gateway_events = Table(
    "payments_gateway_events",
    metadata,
    Column("gateway", String(32), primary_key=True),
    Column("event_id", String(255), primary_key=True),  # the dedupe key, with the gateway
    Column("event_type", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("detail", Text),
    Column("gateway_payment_id", String(128)),
    Column("event_created_at", UTCDateTime()),
    Column("body", Text),  # kept while unmatched (to retry) or invalid (to inspect)
    Column("tries", Integer, nullable=False, default=1),
    Column("first_seen_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

payments_quarantined_events = Table(
    # Gateway events that stayed unmatched past the bounded number of tries (0004): kept with
    # the reason for an operator to replay (`paysight webhooks replay`) or discard.
    "payments_quarantined_events",
    metadata,
    Column("gateway", String(32), primary_key=True),
    Column("event_id", String(255), primary_key=True),
    Column("event_type", String(128), nullable=False),
    Column("reason", Text, nullable=False),
    Column("gateway_payment_id", String(128)),
    Column("body", Text),
    Column("tries", Integer, nullable=False),
    Column("first_seen_at", UTCDateTime(), nullable=False),
    Column("quarantined_at", UTCDateTime(), nullable=False),
)

payments_disputes = Table(
    "payments_disputes",
    metadata,
    Column("gateway", String(32), primary_key=True),
    Column("gateway_dispute_id", String(128), primary_key=True),
    Column("gateway_payment_id", String(128), nullable=False),
    Column("invoice_id", Integer, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("reason", String(64)),
    Column("status", String(32), nullable=False),
    # Stripe debits the disputed amount when a dispute opens, gives it back when it is won and
    # keeps it when lost; the invoice stays paid throughout.
    Column("funds_withdrawn_minor", BigInteger, nullable=False),
    Column("opened_at", UTCDateTime(), nullable=False),
    Column("closed_at", UTCDateTime()),
    Column("last_event_at", UTCDateTime(), nullable=False),  # version: older events never win
    Column("updated_at", UTCDateTime(), nullable=False),
)

payments_landing_cursors = Table(
    "payments_landing_cursors",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

invoice_documents = Table(
    "invoice_documents",
    metadata,
    Column("invoice_id", Integer, primary_key=True),
    Column("number", String(16), nullable=False),
    Column("path", String(500), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("lang", String(8), nullable=False),
    Column("rendered_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("number", name="invoice_documents_number_key"),
)

document_deliveries = Table(
    "document_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(40), nullable=False),
    Column("template_key", String(64), nullable=False),
    # Queueing the same thing twice (a retried invoice run) must not mail it twice.
    Column("dedupe_key", String(200), nullable=True),
    Column("document_number", String(16), nullable=True),
    Column("recipient", String(320), nullable=False),
    Column("lang", String(8), nullable=False),
    Column("subject", Text, nullable=False),
    Column("text_body", Text, nullable=False),
    Column("html_body", Text, nullable=False),
    Column("message_id", String(255), nullable=False),
    Column("status", String(12), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime(), nullable=True),
    Column("claim_token", String(36), nullable=True),
    Column("claimed_at", UTCDateTime(), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("sent_at", UTCDateTime(), nullable=True),
    Column("resend_of", Integer, ForeignKey("document_deliveries.id"), nullable=True),
    Index("ix_document_deliveries_due", "status", "next_attempt_at"),
    UniqueConstraint("dedupe_key", name="document_deliveries_dedupe_key_key"),
    UniqueConstraint("message_id", name="document_deliveries_message_id_key"),
)

document_delivery_attachments = Table(
    "document_delivery_attachments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", Integer, ForeignKey("document_deliveries.id"), nullable=False),
    Column("filename", String(200), nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("content", LargeBinary, nullable=False),
)

# Attachments kept by reference: a stored invoice PDF is attached from the document store at
# send time instead of being copied into the ledger (100,000 invoices would add gigabytes).
# The hash pins the content queued, so a file changed or lost later fails loudly instead of
# mailing something else.
document_delivery_files = Table(
    "document_delivery_files",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", Integer, ForeignKey("document_deliveries.id"), nullable=False),
    Column("filename", String(200), nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("path", String(500), nullable=False),
    Column("sha256", String(64), nullable=False),
    Index("ix_document_delivery_files_delivery", "delivery_id"),
)

ops_alerts = Table(
    "ops_alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(64), nullable=False),  # the failed job
    Column("run_id", String(64), nullable=False),  # one alert per failed run
    Column("severity", String(16), nullable=False),
    Column("message", Text, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("run_id", name="ops_alerts_run_id_key"),
)
