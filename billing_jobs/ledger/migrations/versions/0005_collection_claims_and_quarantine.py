"""collection claims on the invoice's collection state, and quarantined gateway events

Revision ID: 0005
Revises: 0004

`payments_collection_state` gets the "charge in flight" claim (the attempt being charged and
when it was claimed) and the payment method whose decline must never be retried
automatically. Invoices that already have an unresolved attempt get a state row claimed by it,
so the janitor and the pre-charge check see them as every new attempt is seen.
`payments_quarantined_events` keeps gateway events that stayed unmatched past the bounded
number of tries, with the reason, for an operator to replay or discard.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

STATE_COLUMNS = (
    ("claim_attempt_id", sa.Integer()),
    ("claimed_at", sa.DateTime()),
    ("declined_token", sa.String(128)),
    ("declined_code", sa.String(64)),
)


def upgrade() -> None:
    with op.batch_alter_table("payments_collection_state") as batch:
        for name, type_ in STATE_COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))
    op.create_table(
        "payments_quarantined_events",
        sa.Column("gateway", sa.String(32), primary_key=True),
        sa.Column("event_id", sa.String(255), primary_key=True),
        sa.Column("event_type", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("gateway_payment_id", sa.String(128)),
        sa.Column("body", sa.Text()),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.Column("quarantined_at", sa.DateTime(), nullable=False),
    )
    # Unresolved attempts from before this revision: their invoices are claimed by them.
    op.execute(
        "INSERT INTO payments_collection_state (invoice_id, gateway, next_retry_at, dunning_json,"
        " closed, updated_at) SELECT a.invoice_id, a.gateway, NULL, NULL, 0, a.created_at"
        " FROM payment_attempts a WHERE a.status IN ('pending', 'unknown')"
        " AND NOT EXISTS (SELECT 1 FROM payments_collection_state s"
        " WHERE s.invoice_id = a.invoice_id)"
    )
    op.execute(
        "UPDATE payments_collection_state SET"
        " claim_attempt_id = (SELECT max(a.id) FROM payment_attempts a"
        " WHERE a.invoice_id = payments_collection_state.invoice_id"
        " AND a.status IN ('pending', 'unknown')),"
        " claimed_at = (SELECT max(a.created_at) FROM payment_attempts a"
        " WHERE a.invoice_id = payments_collection_state.invoice_id"
        " AND a.status IN ('pending', 'unknown'))"
    )


def downgrade() -> None:
    op.drop_table("payments_quarantined_events")
    with op.batch_alter_table("payments_collection_state") as batch:
        for name, _ in reversed(STATE_COLUMNS):
            batch.drop_column(name)
