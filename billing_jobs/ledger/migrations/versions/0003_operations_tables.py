"""payments state, gateway events and operations alerts in the ledger

Revision ID: 0003
Revises: 0002

Until now these tables were created on first use (payments service, gateway events, the
payments failure sensor). This revision creates them exactly as that code did, and only where
missing: ledgers where they already exist keep their tables and rows untouched.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _tables() -> sa.MetaData:
    """The nine tables as of this revision, spelled out (not imported: later code may change)."""
    # A plain MetaData (no naming convention), as the create-on-first-use code used; unique
    # constraints named as PostgreSQL named that code's inline UNIQUEs.
    meta = sa.MetaData()
    ts = sa.DateTime
    sa.Table(
        "payments_gateway_customers",
        meta,
        sa.Column("customer_id", sa.Integer(), primary_key=True),
        sa.Column("gateway", sa.String(32), primary_key=True),
        sa.Column("gateway_customer_id", sa.String(128), nullable=False),
        sa.Column("created_at", ts(), nullable=False),
    )
    sa.Table(
        "payments_method_details",
        meta,
        sa.Column("payment_method_id", sa.Integer(), primary_key=True),
        sa.Column("brand", sa.String(32)),
        sa.Column("last4", sa.String(4)),
        sa.Column("exp_month", sa.Integer()),
        sa.Column("exp_year", sa.Integer()),
        sa.Column("issuer", sa.String(64)),
        sa.Column("max_amount_minor", sa.BigInteger()),
    )
    sa.Table(
        "payments_collection_state",
        meta,
        sa.Column("invoice_id", sa.Integer(), primary_key=True),
        sa.Column("gateway", sa.String(32), nullable=False),
        sa.Column("next_retry_at", ts(), nullable=True),
        sa.Column("dunning_json", sa.Text()),
        sa.Column("closed", sa.Integer(), nullable=False),
        sa.Column("updated_at", ts(), nullable=False),
    )
    sa.Table(
        "payments_dunning_notifications",
        meta,
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("invoice_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("template_key", sa.String(64), nullable=False),
        sa.Column("due_at", ts(), nullable=False),
        sa.Column("next_retry_at", ts(), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("mail_delivery_id", sa.Integer()),
        sa.Column("created_at", ts(), nullable=False),
        sa.UniqueConstraint("invoice_id", "kind", "due_at", name="uq_payments_dunning_once"),
    )
    sa.Table(
        "payments_refunds",
        meta,
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("invoice_id", sa.Integer(), nullable=False),
        sa.Column("gateway", sa.String(32), nullable=False),
        sa.Column("gateway_payment_id", sa.String(128), nullable=False),
        sa.Column("gateway_refund_id", sa.String(128), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("credit_note_id", sa.Integer()),
        sa.Column("created_at", ts(), nullable=False),
        sa.UniqueConstraint("gateway_refund_id", name="payments_refunds_gateway_refund_id_key"),
    )
    _events_disputes_and_alerts(meta, ts)
    return meta


def _events_disputes_and_alerts(meta: sa.MetaData, ts: type[sa.DateTime]) -> None:
    """payments_gateway_events, payments_disputes, payments_landing_cursors, ops_alerts."""
    sa.Table(
        "payments_gateway_events",
        meta,
        sa.Column("gateway", sa.String(32), primary_key=True),
        sa.Column("event_id", sa.String(255), primary_key=True),
        sa.Column("event_type", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text()),
        sa.Column("gateway_payment_id", sa.String(128)),
        sa.Column("event_created_at", ts()),
        sa.Column("body", sa.Text()),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("first_seen_at", ts(), nullable=False),
        sa.Column("updated_at", ts(), nullable=False),
    )
    sa.Table(
        "payments_disputes",
        meta,
        sa.Column("gateway", sa.String(32), primary_key=True),
        sa.Column("gateway_dispute_id", sa.String(128), primary_key=True),
        sa.Column("gateway_payment_id", sa.String(128), nullable=False),
        sa.Column("invoice_id", sa.Integer(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("reason", sa.String(64)),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("funds_withdrawn_minor", sa.BigInteger(), nullable=False),
        sa.Column("opened_at", ts(), nullable=False),
        sa.Column("closed_at", ts()),
        sa.Column("last_event_at", ts(), nullable=False),
        sa.Column("updated_at", ts(), nullable=False),
    )
    sa.Table(
        "payments_landing_cursors",
        meta,
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )
    sa.Table(
        "ops_alerts",
        meta,
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", ts(), nullable=False),
        sa.UniqueConstraint("run_id", name="ops_alerts_run_id_key"),
    )


def upgrade() -> None:
    # checkfirst: ledgers where the services already created some of these keep them.
    _tables().create_all(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    _tables().drop_all(op.get_bind(), checkfirst=True)
