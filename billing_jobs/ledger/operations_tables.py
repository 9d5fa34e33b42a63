"""Operations tables of the ledger: the payments state (gateway customers, method details,
collection and dunning state, dunning notifications, refunds), gateway events and disputes,
landing cursors, invoice documents, the mail outbox and ops alerts. Part of the one ledger schema
(`billing_jobs.ledger.schema` re-exports every table here)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from billing_jobs.ledger.columns import UTCDateTime, metadata

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
    # transaction that finalizes it. Set only while that attempt is unresolved (0005).
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
    # Gateway events that stayed unmatched past the bounded number of tries (0005): kept with
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

credit_note_documents = Table(
    "credit_note_documents",
    metadata,
    Column("credit_note_id", Integer, primary_key=True),
    Column("number", String(16), nullable=False),
    Column("path", String(500), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("lang", String(8), nullable=False),
    Column("rendered_at", UTCDateTime(), nullable=False),
    UniqueConstraint("number", name="uq_credit_note_documents_number"),
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
