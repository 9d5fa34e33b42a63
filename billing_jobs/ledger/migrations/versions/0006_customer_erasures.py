"""customer erasures

Revision ID: 0006
Revises: 0005

`customer_erasures`: the append-only record of each customer's erasure (when, which fields were
pseudonymized or removed; never the old values), one row per customer.
"""

import sqlalchemy as sa
from alembic import op

from billing_jobs.ledger.schema import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "customer_erasures",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("customer_id", _ID, nullable=False),
        sa.Column("erased_at", UTCDateTime(), nullable=False),
        sa.Column("fields", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name="fk_customer_erasures_customer_id_customers"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_customer_erasures"),
        sa.UniqueConstraint("customer_id", name="uq_customer_erasures_customer_id"),
    )


def downgrade() -> None:
    op.drop_table("customer_erasures")
