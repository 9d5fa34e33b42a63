"""Retention on the real ledger (SQLite and PostgreSQL): an invoice bundle goes only when the
invoice, its credit notes and its payments are all past their terms, nothing it points at is
left dangling, a dry run only counts, and a second run deletes nothing."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, insert, select, text

from billing_jobs.ledger import schema as s
from billing_jobs.retention.ledger import apply_ledger_retention
from billing_jobs.retention.policy import load_policy
from billing_jobs.subscriptions.service import cancel_subscription, create_subscription

# 2034-04-01 00:00 IST: eight years after the end of financial year 2025-26.
AS_OF = datetime(2034, 3, 31, 18, 30, tzinfo=UTC)
JUST_BEFORE = datetime(2034, 3, 31, 18, 29, 59, tzinfo=UTC)


def _at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def _invoice_of(engine, sub_id: int) -> int:
    with engine.connect() as conn:
        return conn.execute(
            select(s.invoices.c.id).where(s.invoices.c.subscription_id == sub_id)
        ).scalar_one()


def _attempt(conn, invoice_id: int, n: int, at: datetime) -> None:
    conn.execute(insert(s.payment_attempts), {
        "invoice_id": invoice_id, "attempt_number": n, "idempotency_key": f"k{invoice_id}-{n}",
        "status": "succeeded", "gateway": "simulated", "gateway_payment_id": f"pay_{invoice_id}_{n}",
        "amount_minor": 100, "currency": "INR", "created_at": at, "finalized_at": at,
    })  # fmt: skip


def _world(engine, new_customer):
    """Three customers: A's invoice and credit note (FY 2025-26) and payment are all old; B's
    invoice is of FY 2026-27; C's invoice is of FY 2025-26 but was paid on a retry in 2027."""
    a, b, c = (new_customer(engine, name=n) for n in ("Asha Rao", "Bela Iyer", "Chitra Das"))
    sub_a = create_subscription(engine, customer_id=a, plan="scale-monthly", start=_at(2025, 5, 10))
    cancel_subscription(engine, sub_a["id"], at=_at(2025, 5, 20))
    sub_b = create_subscription(engine, customer_id=b, plan="scale-monthly", start=_at(2026, 4, 2))
    sub_c = create_subscription(engine, customer_id=c, plan="scale-monthly", start=_at(2025, 6, 1))
    inv_a, inv_b, inv_c = (_invoice_of(engine, x["id"]) for x in (sub_a, sub_b, sub_c))
    with engine.begin() as conn:
        _attempt(conn, inv_a, 1, _at(2025, 5, 10))
        _attempt(conn, inv_b, 1, _at(2026, 4, 2))
        _attempt(conn, inv_c, 1, _at(2025, 6, 1))
        _attempt(conn, inv_c, 2, _at(2027, 6, 1))  # within 7 years of AS_OF: C's bundle stays
        conn.execute(insert(s.payments_refunds), {
            "invoice_id": inv_a, "gateway": "simulated", "gateway_payment_id": f"pay_{inv_a}_1",
            "gateway_refund_id": "re_1", "amount_minor": 50, "currency": "INR",
            "created_at": _at(2025, 5, 21),
        })  # fmt: skip
        conn.execute(insert(s.invoice_documents), {
            "invoice_id": inv_a, "number": "INV/2526/000001", "path": "2526/INV-2526-000001.pdf",
            "sha256": "0" * 64, "lang": "en", "rendered_at": _at(2025, 5, 10),
        })  # fmt: skip
        for i, seen in enumerate((_at(2025, 5, 10), _at(2033, 12, 1), _at(2034, 3, 1))):
            conn.execute(insert(s.payments_gateway_events), {
                "gateway": "simulated", "event_id": f"evt_{i}", "event_type": "charge.succeeded",
                "status": "unmatched", "body": '{"email": "asha@example.com"}',
                "first_seen_at": seen, "updated_at": seen,
            })  # fmt: skip
    return inv_a, inv_b, inv_c


def _snapshot(engine) -> dict[str, int]:
    with engine.connect() as conn:
        out = {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
               for t in s.metadata.sorted_tables}  # fmt: skip
        out["bodies"] = conn.execute(
            text("select count(*) from payments_gateway_events where body is not null")
        ).scalar_one()
        out["balance"] = conn.execute(
            select(func.coalesce(func.sum(s.customer_balance_transactions.c.amount_minor), 0))
        ).scalar_one()
    return out


def test_an_invoice_bundle_goes_only_when_every_member_is_past_its_term(ledger, new_customer):
    policy = load_policy()
    inv_a, inv_b, inv_c = _world(ledger, new_customer)
    start = _snapshot(ledger)
    assert start["credit_notes"] == 1 and start["payment_attempts"] == 4

    early = apply_ledger_retention(ledger, policy, JUST_BEFORE)
    assert early.totals().get("invoices", 0) == 0 and early.totals().get("payments", 0) == 0
    assert early.counts["ledger"]["subscription_events"] > 0  # 7 years from 2025-26
    assert early.counts["webhook_bodies"]["payments_gateway_events"] == 1  # 2033-12-01
    assert early.counts["ledger"]["payments_gateway_events"] == 1  # 2025: the row went
    after_early = _snapshot(ledger)
    assert after_early["invoices"] == 3 and after_early["bodies"] == 1  # 2034-03-01 is kept

    dry = apply_ledger_retention(ledger, policy, AS_OF, dry_run=True)
    assert _snapshot(ledger) == after_early  # a dry run only counts
    report = apply_ledger_retention(ledger, policy, AS_OF)
    assert report.counts == dry.counts and not report.dry_run and dry.dry_run
    assert report.counts["invoices"] == {
        "credit_note_lines": 1, "credit_note_documents": 0, "credit_notes": 1,
        "invoice_lines": 1, "invoice_documents": 1, "invoices": 1,
    }  # fmt: skip
    assert report.counts["payments"]["payment_attempts"] == 1
    assert report.counts["payments"]["payments_refunds"] == 1
    assert report.document_paths == ["2526/INV-2526-000001.pdf"]
    end = _snapshot(ledger)
    with ledger.connect() as conn:
        kept = set(conn.execute(select(s.invoices.c.id)).scalars())
        attempts = conn.execute(select(s.payment_attempts.c.invoice_id)).scalars().all()
        charges = conn.execute(select(s.subscription_charges.c.invoice_id)).scalars().all()
    assert kept == {inv_b, inv_c}
    assert sorted(attempts) == sorted([inv_b, inv_c, inv_c])  # no payment of a kept invoice went
    assert inv_a not in charges and len(charges) == start["subscription_charges"]
    assert end["balance"] == start["balance"]  # balance transactions keep their amounts

    again = apply_ledger_retention(ledger, policy, AS_OF)
    assert again.totals() == {c: 0 for c in again.totals()}
    assert _snapshot(ledger) == end
