"""The billing ledger: schema, engines and migrations."""

from billing_jobs.ledger.engine import make_engine, upgrade_ledger
from billing_jobs.ledger.schema import metadata

__all__ = ["make_engine", "metadata", "upgrade_ledger"]
