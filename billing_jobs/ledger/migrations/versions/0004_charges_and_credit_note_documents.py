"""subscription charges (credits at the price paid), credit-note discounts, credit-note PDFs

Revision ID: 0004
Revises: 0003

- `subscription_charges`: what each item in force was charged for its billing period (list
  amount, discount share, taxable value), so that unused time is always credited on the items
  in force at that instant and at the price actually charged, and never twice. Backfilled
  from the lines of each subscription's current recurring invoice whose plan is still in
  force (what the ledger knew before this table existed).
- `credit_note_lines.amount_minor` / `discount_minor`: the value before discount and the
  discount reversed with it (existing lines: amount = taxable, discount 0).
- `credit_note_documents`: the stored PDF of each credit note, like `invoice_documents`.
"""

import sqlalchemy as sa
from alembic import op

from billing_jobs.ledger.schema import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _fk(column: str, table: str, nullable: bool) -> tuple[sa.Column, sa.ForeignKeyConstraint]:
    return (
        sa.Column(column, _ID, nullable=nullable),
        sa.ForeignKeyConstraint(
            [column], [f"{table}.id"], name=f"fk_subscription_charges_{column}_{table}"
        ),
    )


def upgrade() -> None:
    fks = [
        _fk("subscription_id", "subscriptions", False),
        _fk("plan_id", "plans", False),
        _fk("invoice_id", "invoices", True),
        _fk("invoice_line_id", "invoice_lines", True),
        _fk("credit_invoice_id", "invoices", True),
        _fk("credit_note_id", "credit_notes", True),
    ]
    cols = {c.name: c for c, _ in fks}
    money = {
        name: sa.Column(name, sa.BigInteger(), server_default=sa.text("0"), nullable=False)
        for name in ("amount_minor", "discount_minor", "taxable_minor")
    }
    op.create_table(
        "subscription_charges",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        cols["subscription_id"],
        cols["plan_id"],
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("period_start", UTCDateTime(), nullable=False),
        sa.Column("period_end", UTCDateTime(), nullable=False),
        sa.Column("charged_from", UTCDateTime(), nullable=False),
        sa.Column("credited_from", UTCDateTime(), nullable=True),
        *money.values(),
        sa.Column("tax_rate_bp", sa.Integer(), nullable=False),
        cols["invoice_id"],
        cols["invoice_line_id"],
        cols["credit_invoice_id"],
        cols["credit_note_id"],
        *(fk for _, fk in fks),
        sa.PrimaryKeyConstraint("id", name="pk_subscription_charges"),
    )
    op.create_index(
        "ix_subscription_charges_subscription_id", "subscription_charges", ["subscription_id"]
    )
    op.create_index(
        "ix_subscription_charges_in_force",
        "subscription_charges",
        ["subscription_id", "period_start", "credited_from"],
    )
    with op.batch_alter_table("credit_note_lines") as batch:
        for name in ("amount_minor", "discount_minor"):
            batch.add_column(
                sa.Column(name, sa.BigInteger(), server_default=sa.text("0"), nullable=False)
            )
    op.execute("UPDATE credit_note_lines SET amount_minor = taxable_minor")
    op.create_table(
        "credit_note_documents",
        sa.Column("credit_note_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=16), nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("lang", sa.String(length=8), nullable=False),
        sa.Column("rendered_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("credit_note_id", name="pk_credit_note_documents"),
        sa.UniqueConstraint("number", name="uq_credit_note_documents_number"),
    )
    # What was in force before this table: the current period's recurring lines for plans the
    # subscription still has (a change made mid-period before the upgrade is not known here).
    op.execute(
        """
        INSERT INTO subscription_charges (subscription_id, plan_id, quantity, currency,
            period_start, period_end, charged_from, amount_minor, discount_minor, taxable_minor,
            tax_rate_bp, invoice_id, invoice_line_id)
        SELECT i.subscription_id, l.plan_id, l.quantity, i.currency, i.period_start,
            i.period_end, i.period_start, l.amount_minor, l.discount_minor, l.taxable_minor,
            l.tax_rate_bp, i.id, l.id
        FROM invoice_lines l
        JOIN invoices i ON i.id = l.invoice_id
        JOIN subscriptions s ON s.id = i.subscription_id
        JOIN subscription_items si ON si.subscription_id = s.id AND si.plan_id = l.plan_id
        WHERE i.kind = 'recurring' AND l.kind = 'recurring'
          AND i.period_start = s.current_period_start
          AND s.billed_period_start = s.current_period_start
          AND i.status IN ('open', 'paid')
        """
    )


def downgrade() -> None:
    op.drop_table("credit_note_documents")
    with op.batch_alter_table("credit_note_lines") as batch:
        batch.drop_column("discount_minor")
        batch.drop_column("amount_minor")
    op.drop_index("ix_subscription_charges_in_force", table_name="subscription_charges")
    op.drop_index("ix_subscription_charges_subscription_id", table_name="subscription_charges")
    op.drop_table("subscription_charges")
