"""Ledger invoice -> PDF on disk -> mail, exactly once (real SQLite ledger, real aiosmtpd)."""

from datetime import UTC, datetime
from io import BytesIO

import pytest
from pypdf import PdfReader

from billing_jobs.catalog import DEMO_CATALOG, load_catalog
from billing_jobs.customers import create_customer
from billing_jobs.invoicing.documents.from_ledger import DocumentSourceError, invoice_document
from billing_jobs.invoicing.documents.invoice_run import run_invoice_documents
from billing_jobs.invoicing.mail import send_due
from billing_jobs.ledger import make_engine, upgrade_ledger
from billing_jobs.subscriptions.billing_run import run_billing
from billing_jobs.subscriptions.service import create_subscription

T0 = datetime(2025, 4, 1, 6, 0, tzinfo=UTC)


@pytest.fixture
def ledger(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    upgrade_ledger(engine)
    load_catalog(engine, DEMO_CATALOG, now=T0)
    yield engine
    engine.dispose()


def _customer(engine, **kw):
    args = {
        "name": "Kaveri Analytics Pvt Ltd",
        "state_code": "33",
        "currency": "INR",
        "now": T0,
        "email": "accounts@kaveri.test",
        "address_line": "12 Anna Salai",
        "city": "Chennai",
    }
    args.update(kw)
    return create_customer(engine, **args)["id"]


def test_invoice_run_renders_stores_and_mails_once(ledger, tmp_path, smtp_server):
    handler, settings = smtp_server
    cid = _customer(ledger)
    create_subscription(ledger, customer_id=cid, plan="growth-monthly", start=T0, quantity=2)
    run_billing(ledger, datetime(2025, 5, 2, tzinfo=UTC))
    root = tmp_path / "invoices"
    first = run_invoice_documents(ledger, root, datetime(2025, 5, 2, tzinfo=UTC))
    assert first.rendered >= 1 and first.queued == first.rendered and not first.errors
    pdfs = sorted(root.rglob("*.pdf"))
    assert len(pdfs) == first.rendered and all(p.parent.name == "2025-26" for p in pdfs)
    text = "".join(page.extract_text() for page in PdfReader(BytesIO(pdfs[0].read_bytes())).pages)
    assert "Kaveri Analytics Pvt Ltd" in text and "Tamil Nadu" in text and "997331" in text

    again = run_invoice_documents(ledger, root, datetime(2025, 5, 3, tzinfo=UTC))
    assert (again.rendered, again.queued) == (0, 0)

    report = send_due(ledger, datetime(2025, 5, 2, 0, 5, tzinfo=UTC), settings)
    assert len(report.sent) == first.queued
    assert send_due(ledger, datetime(2025, 5, 2, 1, 0, tzinfo=UTC), settings).sent == []
    assert len(handler.messages) == first.queued
    msg = handler.messages[0]
    assert msg["To"] == "accounts@kaveri.test"
    attachment = next(
        p for p in msg.iter_attachments() if p.get_content_type() == "application/pdf"
    )
    assert attachment.get_content() in {p.read_bytes() for p in pdfs}


def test_interstate_invoice_carries_igst_and_place_of_supply(ledger):
    cid = _customer(ledger, gstin=None, state_code="27")
    sub = create_subscription(ledger, customer_id=cid, plan="starter-monthly", start=T0)
    inv_id = sub.get("invoice", {}).get("id") if isinstance(sub.get("invoice"), dict) else None
    if inv_id is None:
        run_billing(ledger, datetime(2025, 5, 2, tzinfo=UTC))
        from sqlalchemy import text

        with ledger.connect() as c:
            inv_id = c.execute(
                text("select min(id) from invoices where number is not null")
            ).scalar_one()
    doc = invoice_document(ledger, inv_id)
    assert doc.place_of_supply.code == "27" and doc.place_of_supply.name == "Maharashtra"
    assert doc.totals.igst_minor > 0 and doc.totals.cgst_minor == 0
    assert doc.supplier.gstin[:2] != "27"


def test_missing_invoice_is_a_clear_error(ledger):
    with pytest.raises(DocumentSourceError, match="does not exist"):
        invoice_document(ledger, 999)
