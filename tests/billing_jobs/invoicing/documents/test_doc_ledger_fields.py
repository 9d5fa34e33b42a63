"""Issue #17: ledger invoices and credit notes print what a tax document must show: the
discount and how the taxable value was reached, the supplier's and recipient's full
addresses, a footer in the document's language; credit notes get PDFs that reference the
original invoice (CGST Rule 53)."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from billing_jobs.invoicing.documents import DocumentKind, build_view, render_pdf
from billing_jobs.invoicing.documents.from_ledger import (
    DocumentSourceError,
    credit_note_document,
    invoice_document,
)
from billing_jobs.invoicing.documents.invoice_run import run_invoice_documents
from billing_jobs.ledger import schema as s
from billing_jobs.service import create_subscription, mark_invoice_paid, pause_subscription

APR1 = datetime(2026, 4, 1, 5, tzinfo=UTC)
APR16 = datetime(2026, 4, 16, 5, tzinfo=UTC)


def _text(pdf: bytes) -> str:
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    return re.sub(r"\s+", " ", re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", "", text))


@pytest.fixture
def discounted(ledger, new_customer):
    """Growth x 3 with LAUNCH20 for a Mumbai customer with a full address."""
    cid = new_customer(
        ledger, name="Sahyadri Foods Pvt Ltd", state_code="27", gstin="27AAPFU0939F1ZV",
        address_line="Unit 4, Peninsula Park, Andheri East", city="Mumbai",
        postal_code="400093", email="ap@sahyadri.test", locale="hi_IN",
    )  # fmt: skip
    sub = create_subscription(ledger, customer_id=cid, plan="growth-monthly", quantity=3,
                              coupon="LAUNCH20", trial_days=0, start=APR1)  # fmt: skip
    with ledger.connect() as conn:
        inv_id = conn.execute(
            select(s.invoices.c.id).where(s.invoices.c.subscription_id == sub["id"])
        ).scalar_one()
    return sub["id"], inv_id


def test_the_gst_invoice_shows_the_discount(ledger, discounted) -> None:
    _, inv_id = discounted
    doc = invoice_document(ledger, inv_id)
    (line,) = doc.lines
    assert (line.value_minor, line.discount_minor, line.taxable_value_minor) == (
        749700,
        149940,
        599760,
    )
    view = build_view(doc)
    assert [h["t"] for h in view["columns"]["head1"]][3:7] == [
        "Qty",
        "Value",
        "Discount",
        "Taxable Value",
    ]
    assert view["rows"][0][3:7] == ["3", "7,497.00", "-1,499.40", "5,997.60"]
    totals = {label: value for label, value, _ in view["totals"]}
    assert totals["Value before discount"] == "7,497.00" and totals["Discount"] == "-1,499.40"
    assert totals["Total Taxable Value"] == "5,997.60"
    text = _text(render_pdf(doc))
    assert "Discount" in text and "-1,499.40" in text and "5,997.60" in text
    assert "Growth (monthly, per seat) × 3" in text


def test_supplier_and_recipient_addresses_are_printed(ledger, discounted) -> None:
    _, inv_id = discounted
    doc = invoice_document(ledger, inv_id)
    assert doc.supplier.address == ("3rd Floor, 42 Hosur Road, Koramangala", "Bengaluru 560095")
    assert doc.recipient.address == ("Unit 4, Peninsula Park, Andheri East", "Mumbai 400093")
    text = _text(render_pdf(doc))
    for part in (*doc.supplier.address, *doc.recipient.address, "Karnataka", "Maharashtra"):
        assert part in text
    assert "India" not in doc.supplier.address


def test_the_hindi_invoice_has_a_hindi_footer(ledger, discounted) -> None:
    _, inv_id = discounted
    doc = invoice_document(ledger, inv_id)
    hindi = build_view(doc, lang="hi")["brand"]["footer"]
    assert "दस्तावेज़" in hindi and "e-mail it came with" not in hindi
    assert "दस्तऐवज" in build_view(doc, lang="mr")["brand"]["footer"]
    assert build_view(doc)["brand"]["footer"].startswith("Questions about this document")
    assert "e-mail it came with" not in _text(render_pdf(doc, lang="hi"))


def test_a_credit_note_prints_like_an_invoice_and_references_it(ledger, discounted) -> None:
    sub_id, inv_id = discounted
    mark_invoice_paid(ledger, inv_id, at=APR1)
    note = pause_subscription(ledger, sub_id, at=APR16)["credit_note"]
    doc = credit_note_document(ledger, note["id"])
    invoice = invoice_document(ledger, inv_id)
    assert doc.kind is DocumentKind.CREDIT_NOTE and doc.number == note["number"]
    assert doc.original_invoice.number == invoice.number
    assert doc.original_invoice.issue_date == invoice.issue_date
    assert doc.totals.taxable_minor == note["taxable_minor"] == 299880  # half of 5,997.60
    assert doc.totals.igst_minor == note["igst_minor"] and doc.reason == "pause"
    (line,) = doc.lines
    assert (line.value_minor, line.discount_minor) == (374850, 74970)
    assert doc.supplier == invoice.supplier and doc.recipient == invoice.recipient
    text = _text(render_pdf(doc))
    for needle in ("CREDIT NOTE", "Against Invoice No.", invoice.number, "Original Invoice Date",
                   "Reason", "Pause", "2,998.80", "-749.70", "Mumbai 400093"):  # fmt: skip
        assert needle in text, needle
    # (shaped Devanagari does not extract from a PDF reliably: the view is what is printed)
    hindi = build_view(doc, lang="hi")
    assert hindi["title"] == "क्रेडिट नोट" and "दस्तावेज़" in hindi["brand"]["footer"]
    meta = dict(hindi["meta"])
    assert meta["मूल बीजक संख्या"] == invoice.number and meta["कारण"] == "सदस्यता स्थगित"
    assert render_pdf(doc, lang="hi").startswith(b"%PDF")


def test_the_invoice_run_stores_and_mails_credit_notes(ledger, discounted, tmp_path) -> None:
    sub_id, inv_id = discounted
    mark_invoice_paid(ledger, inv_id, at=APR1)
    note = pause_subscription(ledger, sub_id, at=APR16)["credit_note"]
    first = run_invoice_documents(ledger, tmp_path / "docs", APR16, workers=1)
    assert (first.rendered, first.queued, first.errors) == (2, 2, [])
    with ledger.connect() as conn:
        (stored,) = conn.execute(select(s.credit_note_documents)).all()
        mails = conn.execute(
            select(s.document_deliveries.c.kind, s.document_deliveries.c.subject,
                   s.document_deliveries.c.document_number).order_by(s.document_deliveries.c.id)
        ).all()  # fmt: skip
    assert stored.number == note["number"] and stored.lang == "hi"
    assert (tmp_path / "docs" / "2026-27" / "CN_2627_000001.pdf").read_bytes()
    assert [m.kind for m in mails] == ["tax_invoice", "credit_note"]
    assert mails[1].document_number == note["number"] and "क्रेडिट नोट" in mails[1].subject
    again = run_invoice_documents(ledger, tmp_path / "docs", APR16, workers=1)
    assert (again.rendered, again.queued) == (0, 0)


def test_an_unknown_credit_note_is_a_clear_error(ledger) -> None:
    with pytest.raises(DocumentSourceError, match="credit note 999 does not exist"):
        credit_note_document(ledger, 999)
