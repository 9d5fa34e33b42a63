"""Alembic environment for the ledger; run via billing_jobs.ledger.upgrade_ledger."""

from __future__ import annotations

from alembic import context

from billing_jobs.ledger.schema import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    from billing_jobs.ledger.engine import make_engine

    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    context.run_migrations()
