"""The billing domain's facade: one import for driving a business through its whole lifecycle
(catalog, customers, subscriptions and their changes, billing runs, invoices, credit notes).

The simulator drives billing through it, as an HTTP API would; the CLI and the Dagster jobs
import the domain modules directly. Every name here is the domain function itself, not a
wrapper, so its behaviour is documented and tested where it lives. It sits above every
subpackage of billing_jobs, and nothing in billing_jobs imports it (tests/test_import_graph.py).
"""

from billing_jobs.catalog import DEMO_CATALOG, load_catalog
from billing_jobs.customers import create_customer, get_customer
from billing_jobs.invoicing.credit_notes import create_credit_note, get_credit_note
from billing_jobs.invoicing.invoices import (
    finalize_invoice,
    get_invoice,
    mark_invoice_paid,
    mark_uncollectible,
    void_invoice,
)
from billing_jobs.ledger import make_engine, upgrade_ledger
from billing_jobs.subscriptions.billing_run import BillingRunResult, run_billing
from billing_jobs.subscriptions.changes import change_subscription
from billing_jobs.subscriptions.preview import preview_invoice
from billing_jobs.subscriptions.service import (
    cancel_subscription,
    create_subscription,
    pause_subscription,
    resume_subscription,
    transition_subscription,
)
from billing_jobs.subscriptions.state import get_subscription

__all__ = [
    "DEMO_CATALOG",
    "BillingRunResult",
    "cancel_subscription",
    "change_subscription",
    "create_credit_note",
    "create_customer",
    "create_subscription",
    "finalize_invoice",
    "get_credit_note",
    "get_customer",
    "get_invoice",
    "get_subscription",
    "load_catalog",
    "make_engine",
    "mark_invoice_paid",
    "mark_uncollectible",
    "pause_subscription",
    "preview_invoice",
    "resume_subscription",
    "run_billing",
    "transition_subscription",
    "upgrade_ledger",
    "void_invoice",
]
