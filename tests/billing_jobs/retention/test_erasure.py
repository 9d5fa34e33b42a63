"""A customer's erasure on the real ledger (SQLite and PostgreSQL): personal fields are
pseudonymized or removed, what GST needs stays, the record names fields (never old values),
and a second request changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, insert, select

from billing_jobs.errors import NotFoundError
from billing_jobs.ledger import schema as s
from billing_jobs.retention.erasure import (
    ERASED_FIELDS,
    ErasureRefusedError,
    erase_customer,
    erased_customer_ids,
    erasure_record,
)
from billing_jobs.subscriptions.service import cancel_subscription, create_subscription
from tests.billing_jobs.conftest import GSTIN_KA

T0 = datetime(2025, 5, 10, tzinfo=UTC)
ERASED_AT = datetime(2025, 7, 1, 9, tzinfo=UTC)
EMAIL = "asha.rao@example.com"


def _world(engine, new_customer) -> tuple[int, int]:
    cid = new_customer(
        engine, name="Asha Rao Consulting", email=EMAIL, gstin=GSTIN_KA, external_ref="crm-77",
        address_line="12 MG Road", city="Bengaluru", postal_code="560001",
    )  # fmt: skip
    new_customer(engine, name="Bela Iyer", email="bela@example.com")
    sub = create_subscription(engine, customer_id=cid, plan="scale-monthly", start=T0)
    with engine.begin() as conn:
        inv = conn.execute(
            select(s.invoices.c.id).where(s.invoices.c.customer_id == cid)
        ).scalar_one()
        pm = conn.execute(insert(s.payment_methods).values(
            customer_id=cid, gateway="simulated", gateway_token="tok_upi_asha", kind="upi",
            label="UPI asha.rao@okhdfcbank", is_default=True, mandate_ref="mdt_1", created_at=T0,
        )).inserted_primary_key[0]  # fmt: skip
        conn.execute(insert(s.payments_method_details).values(
            payment_method_id=pm, brand=None, last4="4242", exp_month=12, exp_year=2030, issuer="hdfc"
        ))  # fmt: skip
        conn.execute(insert(s.payment_attempts).values(
            invoice_id=inv, attempt_number=1, idempotency_key="k1", status="succeeded",
            gateway="simulated", gateway_payment_id="pay_1", amount_minor=100, currency="INR",
            created_at=T0,
        ))  # fmt: skip
        conn.execute(insert(s.payments_gateway_events).values(
            gateway="simulated", event_id="evt_1", event_type="charge.succeeded", status="applied",
            gateway_payment_id="pay_1", body=f'{{"email": "{EMAIL}"}}', first_seen_at=T0,
            updated_at=T0,
        ))  # fmt: skip
        for i, to in enumerate((EMAIL.upper(), "bela@example.com")):
            d = conn.execute(insert(s.document_deliveries).values(
                kind="invoice", template_key="invoice", recipient=to, lang="en",
                subject="Invoice for Asha Rao Consulting", text_body="Dear Asha", html_body="<p>Dear Asha</p>",
                message_id=f"m{i}@paysight.local", status="queued", attempts=0, created_at=T0,
            )).inserted_primary_key[0]  # fmt: skip
            conn.execute(insert(s.document_delivery_attachments).values(
                delivery_id=d, filename="INV.pdf", content_type="application/pdf", content=b"%PDF Asha"
            ))  # fmt: skip
    return cid, sub["id"]


def test_erasure_pseudonymizes_personal_data_and_keeps_what_gst_needs(ledger, new_customer):
    cid, sub = _world(ledger, new_customer)
    with pytest.raises(ErasureRefusedError, match=f"live subscription\\(s\\) {sub}; cancel"):
        erase_customer(ledger, cid, now=ERASED_AT)
    assert erasure_record(ledger, cid) is None
    cancel_subscription(ledger, sub, at=datetime(2025, 6, 1, tzinfo=UTC))
    with ledger.connect() as conn:
        invoices_before = conn.execute(select(s.invoices)).all()

    out = erase_customer(ledger, cid, now=ERASED_AT)
    assert out["already_erased"] is False and out["fields"] == list(ERASED_FIELDS)
    with ledger.connect() as conn:
        c = conn.execute(select(s.customers).where(s.customers.c.id == cid)).one()
        pm = conn.execute(select(s.payment_methods)).one()
        md = conn.execute(select(s.payments_method_details)).one()
        mails = conn.execute(
            select(s.document_deliveries).order_by(s.document_deliveries.c.id)
        ).all()
        attachments = (
            conn.execute(select(s.document_delivery_attachments.c.delivery_id)).scalars().all()
        )
        body = conn.execute(select(s.payments_gateway_events.c.body)).scalar_one()
        record = conn.execute(select(s.customer_erasures)).one()
        assert conn.execute(select(s.invoices)).all() == invoices_before  # GSTIN, place of supply
    assert (c.name, c.email, c.address_line, c.city, c.postal_code, c.external_ref) == (
        f"Erased customer {cid}", None, "", "", "", None)  # fmt: skip
    assert (c.gstin, c.state_code, c.country, c.tax_status) == (GSTIN_KA, "29", "IN", "regular")
    assert pm.label is None and pm.mandate_ref is None and pm.gateway_token == f"erased:{pm.id}"
    assert pm.removed_at == ERASED_AT and not pm.is_default
    assert (md.last4, md.exp_month, md.issuer) == (None, None, "hdfc")
    assert mails[0].recipient == f"erased-customer-{cid}@invalid" and mails[0].status == "failed"
    assert (mails[0].subject, mails[0].text_body, mails[0].html_body) == ("", "", "")
    assert mails[1].recipient == "bela@example.com" and mails[1].status == "queued"  # not theirs
    assert attachments == [mails[1].id]
    assert body is None
    assert (
        record.erased_at == ERASED_AT and EMAIL not in record.fields and "Asha" not in record.fields
    )

    again = erase_customer(ledger, cid, now=datetime(2025, 8, 1, tzinfo=UTC))
    assert again["already_erased"] is True and again["erased_at"] == ERASED_AT.isoformat()
    with ledger.connect() as conn:
        assert conn.execute(select(func.count()).select_from(s.customer_erasures)).scalar_one() == 1
    assert erased_customer_ids(ledger) == [cid]


def test_an_unknown_customer_is_named(ledger):
    with pytest.raises(NotFoundError, match="customer 999 does not exist"):
        erase_customer(ledger, 999, now=ERASED_AT)
    with pytest.raises(ValueError, match="now"):
        erase_customer(ledger, 1, now=datetime(2025, 7, 1))
