"""invoice documents and the mail outbox in the ledger

Revision ID: 0002
Revises: 0001

The tables were created until now by `ensure_document_tables` / `ensure_delivery_tables`
(documents and mail packages). This revision creates them exactly the same way, and only where
missing: ledgers where those functions already ran keep their tables and rows untouched.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _tables() -> sa.MetaData:
    """The four tables as of this revision, spelled out (not imported: later code may change).

    Unique constraints carry the names PostgreSQL gives an inline UNIQUE, so a PostgreSQL
    ledger is the same whichever created it; on SQLite the name is only recorded."""
    # A plain MetaData (no naming convention), as ensure_*() use: same DDL, same constraint
    # names, whichever of the two created a ledger's tables.
    meta = sa.MetaData()
    sa.Table(
        "invoice_documents",
        meta,
        sa.Column("invoice_id", sa.Integer(), primary_key=True),
        sa.Column("number", sa.String(16), nullable=False),
        sa.Column("path", sa.String(500), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("lang", sa.String(8), nullable=False),
        sa.Column("rendered_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("number", name="invoice_documents_number_key"),
    )
    sa.Table(
        "document_deliveries",
        meta,
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("template_key", sa.String(64), nullable=False),
        sa.Column("dedupe_key", sa.String(200), nullable=True),
        sa.Column("document_number", sa.String(16), nullable=True),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("lang", sa.String(8), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("text_body", sa.Text(), nullable=False),
        sa.Column("html_body", sa.Text(), nullable=False),
        sa.Column("message_id", sa.String(255), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=True),
        sa.Column("claim_token", sa.String(36), nullable=True),
        sa.Column("claimed_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column(
            "resend_of", sa.Integer(), sa.ForeignKey("document_deliveries.id"), nullable=True
        ),
        sa.Index("ix_document_deliveries_due", "status", "next_attempt_at"),
        sa.UniqueConstraint("dedupe_key", name="document_deliveries_dedupe_key_key"),
        sa.UniqueConstraint("message_id", name="document_deliveries_message_id_key"),
    )
    for name, payload in (
        ("document_delivery_attachments", [sa.Column("content", sa.LargeBinary(), nullable=False)]),
        (
            "document_delivery_files",
            [
                sa.Column("path", sa.String(500), nullable=False),
                sa.Column("sha256", sa.String(64), nullable=False),
            ],
        ),
    ):
        sa.Table(
            name,
            meta,
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
            sa.Column(
                "delivery_id", sa.Integer(), sa.ForeignKey("document_deliveries.id"), nullable=False
            ),
            sa.Column("filename", sa.String(200), nullable=False),
            sa.Column("content_type", sa.String(100), nullable=False),
            *payload,
        )
    sa.Index(
        "ix_document_delivery_files_delivery", meta.tables["document_delivery_files"].c.delivery_id
    )
    return meta


def upgrade() -> None:
    # checkfirst: ledgers where ensure_*() already created some or all of these keep them
    # (and their rows) untouched; only the missing ones are created.
    _tables().create_all(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    _tables().drop_all(op.get_bind(), checkfirst=True)
