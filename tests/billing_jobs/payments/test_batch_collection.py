"""Batched collection: the same attempts, outcomes and refusals as the per-invoice path."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from billing_jobs.catalog import DEMO_CATALOG, load_catalog
from billing_jobs.customers import create_customer
from billing_jobs.errors import NotFoundError
from billing_jobs.invoicing.invoices import get_invoice, mark_invoice_paid, void_invoice
from billing_jobs.ledger import make_engine, upgrade_ledger
from billing_jobs.ledger import schema as s
from billing_jobs.payments.attempt_store import LedgerAttemptStore
from billing_jobs.payments.batch import (
    BatchAttemptStore,
    collect_invoices,
    link_gateway_customers,
    mark_invoices_paid,
    mark_invoices_uncollectible,
    resolve_unknown_many,
)
from billing_jobs.payments.charging import (
    NOT_CHARGED,
    AlreadyPaid,
    Attempt,
    AttemptInFlight,
    AttemptStatus,
    CollectionError,
    InvoiceCharge,
    collect_invoice,
    resolve_unknown_attempts,
)
from billing_jobs.payments.state import PaymentsError
from billing_jobs.subscriptions.service import create_subscription
from simulation.gateway.simulated import SimulatedGateway

T0 = datetime(2025, 3, 3, 6, 0, tzinfo=UTC)
TOKENS = ["tok_netbanking_HDFC", "tok_upi_okicici", "tok_card_sbi_visa_4242_01_2024",
          "tok_wallet_paytm", "tok_card_hdfc_visa_4242_12_2030", "tok_upi_oksbi",
          "tok_netbanking_SBIN", "tok_card_icici_mastercard_5555_06_2031"]  # fmt: skip


class Clock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


def _world(path: Path, timeouts=None):  # type: ignore[no-untyped-def]
    """A ledger with one open invoice per token and a gateway that knows each customer."""
    engine = upgrade_ledger(f"sqlite:///{path}.sqlite")
    load_catalog(engine, DEMO_CATALOG, now=T0 - timedelta(days=1))
    clock = Clock(T0)
    gw = SimulatedGateway(3, 1, state=f"{path}-gw.sqlite", clock=clock, timeouts=timeouts)
    charges = []
    for i, token in enumerate(TOKENS):
        cid = create_customer(engine, name=f"C{i}", state_code="29", currency="INR", now=T0)["id"]
        create_subscription(engine, customer_id=cid, plan="scale-monthly", start=T0)
        gcus = gw.create_customer(email=f"c{i}@example.in", now=T0).gateway_customer_id
        pm = gw.attach_payment_method(gcus, token).token
        with engine.connect() as conn:
            inv = conn.execute(
                select(s.invoices.c.id, s.invoices.c.amount_due_minor).where(
                    s.invoices.c.customer_id == cid
                )
            ).one()
        charges.append(InvoiceCharge(str(inv.id), gcus, pm, inv.amount_due_minor, "INR"))
    return engine, gw, clock, charges


def _attempt_rows(engine) -> list[tuple]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(text("select * from payment_attempts order by id")).all()


def _gateway_rows(gw: SimulatedGateway) -> list[tuple]:
    return [tuple(r) for r in gw.store.all("select * from sim_payments order by id")]


def _flaky(key: str):  # type: ignore[no-untyped-def]
    # Attempt 1 of the 2nd invoice loses its answer; the 4th never reaches the gateway.
    return {"paysight-2-attempt-1": "after", "paysight-4-attempt-1": "before"}.get(key)


def test_batched_collection_writes_what_per_invoice_collection_writes(tmp_path):
    one, gw1, clock1, charges = _world(tmp_path / "one", _flaky)
    many, gw2, clock2, charges2 = _world(tmp_path / "many", _flaky)
    assert charges == charges2
    times = [T0 + timedelta(minutes=7 * i) for i in range(len(charges))]
    store = LedgerAttemptStore(one, "simulated", keeps_own_schedule=True)  # as the batch path
    rounds = [times, [t + timedelta(days=3) for t in times]]
    for ts in rounds:  # first charges, then retries of whatever failed
        for c, t in zip(charges, ts, strict=True):
            clock1.t = t
            with contextlib.suppress(AlreadyPaid, AttemptInFlight):
                collect_invoice(store, gw1, c, t)
        clock1.t = ts[-1] + timedelta(hours=40)
        resolve_unknown_attempts(store, gw1, clock1.t)
    for ts in rounds:
        with many.begin() as conn:
            batch = BatchAttemptStore(conn, "simulated")
            out = collect_invoices(
                batch,
                gw2,
                list(zip(charges, ts, strict=True)),
                on_time=lambda t: setattr(clock2, "t", t),
            )
            assert all(isinstance(a, Attempt | AlreadyPaid | AttemptInFlight) for a in out)
            clock2.t = ts[-1] + timedelta(hours=40)
            resolve_unknown_many(batch, gw2, clock2.t)
    assert _attempt_rows(one) == _attempt_rows(many)
    assert _gateway_rows(gw1) == _gateway_rows(gw2)
    statuses = {r.status for r in _attempt_rows(many)}
    assert {"succeeded", "failed"} <= statuses  # the worlds did both, not just one thing
    codes = {r.decline_code for r in _attempt_rows(many)}
    assert "expired_card" in codes and NOT_CHARGED in codes


def test_refusals_come_back_in_place_and_nothing_is_charged_twice(tmp_path):
    engine, gw, _clock, charges = _world(tmp_path / "w")
    a, b = charges[0], charges[1]
    with engine.begin() as conn:
        store = BatchAttemptStore(conn, "simulated")
        out = collect_invoices(store, gw, [(a, T0), (b, T0), (a, T0)])
        assert isinstance(out[0], Attempt) and out[0].attempt_number == 1
        assert out[0].status is AttemptStatus.SUCCEEDED  # net banking, HDFC, first try
        assert out[1].status is AttemptStatus.PROCESSING  # UPI answers later
        assert isinstance(out[2], AttemptInFlight)  # the batch's own first attempt is open
        again = collect_invoices(store, gw, [(a, T0 + timedelta(hours=1)), (b, T0)])
        assert isinstance(again[0], AlreadyPaid) and isinstance(again[1], AttemptInFlight)
    assert len(_gateway_rows(gw)) == 2
    with engine.begin() as conn, pytest.raises(NotFoundError):
        collect_invoices(BatchAttemptStore(conn, "simulated"), gw,
                         [(charges[2], T0), (InvoiceCharge("9999", "c", "p", 100, "INR"), T0)])  # fmt: skip
    assert len(_attempt_rows(engine)) == 2  # the refused batch wrote nothing
    with engine.begin() as conn:
        store = BatchAttemptStore(conn, "simulated")
        with pytest.raises(CollectionError, match="integers"):
            store.record_pending_many([(InvoiceCharge("inv_x", "c", "p", 100, "INR"), T0)])
        with pytest.raises(CollectionError, match="timezone-aware"):
            store.record_pending_many([(a, T0.replace(tzinfo=None))])


def test_final_attempts_never_change(tmp_path):
    engine, gw, _clock, charges = _world(tmp_path / "w")
    with engine.begin() as conn:
        store = BatchAttemptStore(conn, "simulated")
        (done,) = collect_invoices(store, gw, [(charges[0], T0)])
        assert isinstance(done, Attempt) and done.status is AttemptStatus.SUCCEEDED
        from billing_jobs.payments.gateway import PaymentResult, PaymentStatus

        late = PaymentResult(PaymentStatus.FAILED, "pi_other", done.amount_minor, "INR",
                             decline_code="insufficient_funds")  # fmt: skip
        (same,) = store.finalize_many([(done, late, T0 + timedelta(days=1))])
    assert same == done


def test_mark_invoices_paid_pays_once_and_refuses_what_cannot_be_paid(tmp_path):
    engine, _gw, _clock, charges = _world(tmp_path / "w")
    ids = [int(c.invoice_id) for c in charges[:3]]
    void_invoice(engine, ids[2], at=T0)
    at = T0 + timedelta(hours=2)
    with engine.begin() as conn:
        assert mark_invoices_paid(conn, [(ids[0], at), (ids[0], at), (ids[2], at)]) == [
            True, False, False,
        ]  # fmt: skip
        assert mark_invoices_uncollectible(conn, [(ids[1], at), (ids[0], at)]) == [True, False]
        assert mark_invoices_paid(conn, [(ids[1], at)]) == [True]  # a write-off may still pay
    one, two = get_invoice(engine, ids[0]), get_invoice(engine, ids[1])
    assert one["status"] == two["status"] == "paid"
    assert one["amount_paid_minor"] == one["amount_due_minor"] > 0
    assert datetime.fromisoformat(one["paid_at"]) == at
    with engine.begin() as conn, pytest.raises(NotFoundError):
        mark_invoices_paid(conn, [(ids[0], at), (424242, at)])
    # The per-invoice function agrees with the batch about the invoice paid above.
    from billing_jobs.errors import InvalidTransitionError

    with pytest.raises(InvalidTransitionError):
        mark_invoice_paid(engine, ids[0], at=at)


def test_link_gateway_customers_is_idempotent_and_never_repoints(tmp_path):
    engine, _gw, _clock, charges = _world(tmp_path / "w")
    links = [(i + 1, c.customer_id) for i, c in enumerate(charges)]
    with engine.begin() as conn:
        assert link_gateway_customers(conn, "simulated", links, T0) == len(links)
        assert link_gateway_customers(conn, "simulated", links, T0) == 0
        with pytest.raises(PaymentsError, match="already"):
            link_gateway_customers(conn, "simulated", [(1, "cus_somebody_else")], T0)
        with pytest.raises(NotFoundError):
            link_gateway_customers(conn, "simulated", [(999, "cus_x")], T0)
    eng = make_engine(str(engine.url))
    with eng.connect() as conn:
        n = conn.execute(text("select count(*) from payments_gateway_customers")).scalar_one()
    eng.dispose()
    assert n == len(links)


def test_list_unknown_among_ids_matches_the_full_scan(tmp_path):
    engine, gw, clock, charges = _world(tmp_path / "w", _flaky)
    with engine.begin() as conn:
        batch = BatchAttemptStore(conn, "simulated")
        out = collect_invoices(batch, gw, [(c, T0 + timedelta(minutes=i))
                                           for i, c in enumerate(charges)])  # fmt: skip
        ids = [int(a.attempt_id) for a in out if isinstance(a, Attempt)]
        later = T0 + timedelta(hours=1)
        full = batch.list_unknown(later)
        assert full and len(full) < len(ids)  # UPI processing and timed-out attempts only
        assert batch.list_unknown(later, among=ids) == full
        assert batch.list_unknown(later, among=[*ids[::-1], 10_000]) == full
        assert batch.list_unknown(later, among=[int(full[0].attempt_id)]) == full[:1]
        assert batch.list_unknown(later, among=[]) == []
        clock.t = T0 + timedelta(days=3)
        done = resolve_unknown_many(batch, gw, clock.t, among=ids)
        assert [a.attempt_id for a in done] == [a.attempt_id for a in full]
        assert batch.list_unknown(clock.t, among=ids) == batch.list_unknown(clock.t)
