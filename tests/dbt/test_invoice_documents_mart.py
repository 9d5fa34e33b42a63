"""Invoice document analytics end to end: a small ledger's invoices rendered and queued by the
invoice run, mailed through a real aiosmtpd on 127.0.0.1 (some refused with 550, one resent,
one left queued), the ledger copied to a temporary DuckDB, and the marts built by dbt, then
checked against the same ledger computed independently in pandas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from sqlalchemy import text

from billing_jobs.catalog import DEMO_CATALOG, load_catalog
from billing_jobs.invoicing.builder import LineInput
from billing_jobs.invoicing.documents.invoice_run import run_invoice_documents
from billing_jobs.invoicing.invoices import mark_invoice_paid
from billing_jobs.invoicing.mail import resend, send_due
from billing_jobs.ledger import make_engine, upgrade_ledger
from billing_jobs.ledger import metadata as ledger_metadata
from billing_jobs.ledger.schema import metadata as schema_metadata
from ingestion.ledger_copy import copy_ledger_tables
from tests.dbt.conftest import run_dbt
from tests.invoice_seed import seed_invoice
from tests.smtp_relay import running_relay

T0 = datetime(2025, 4, 1, 6, 0, tzinfo=UTC)
APRIL_RUN = datetime(2025, 4, 20, 9, 0, tzinfo=UTC)
MAY_RUN = datetime(2025, 5, 20, 9, 0, tzinfo=UTC)
# Customers in invoice order: (email, locale, paid after n days or None).
CUSTOMERS = [
    ("ap@kaveri.test", "en_IN", 3),
    ("ap@godavari.test", "hi_IN", 10),
    ("ap@narmada.test", "en_IN", None),
    ("accounts@tapti.test", "mr_IN", 5),  # 4-6 rendered in May
    (None, "en_IN", 7),  # no address: stored, never mailed
    ("ap@krishna.test", "en_IN", None),
]


@pytest.fixture(scope="module")
def relay():
    with running_relay() as r:
        yield r


def _seed(engine) -> list[int]:
    return [
        seed_invoice(
            engine,
            i,
            name=f"Customer {i}",
            email=addr,
            locale=locale,
            lines=[LineInput("subscription", "Seat pack", None, "998314", 2, 49_900 + i)],
            issued_at=T0 + timedelta(days=i),
            created_at=T0,
        )
        for i, (addr, locale, _) in enumerate(CUSTOMERS)
    ]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, relay):
    server, smtp = relay
    tmp = tmp_path_factory.mktemp("docmart")
    engine = make_engine(f"sqlite:///{tmp / 'ledger.sqlite'}")
    upgrade_ledger(engine)
    load_catalog(engine, DEMO_CATALOG, now=T0)
    ids = _seed(engine)
    for i, (invoice_id, (_, _, paid_after)) in enumerate(zip(ids, CUSTOMERS, strict=True)):
        if paid_after is not None:  # issued at T0 + i days
            at = T0 + timedelta(days=i + paid_after, hours=1)
            mark_invoice_paid(engine, invoice_id, at=at)

    # April: three documents; the relay refuses the first two (550), one is resent and goes.
    april = run_invoice_documents(engine, tmp / "docs", APRIL_RUN, limit=3, workers=1)
    assert (april.rendered, april.queued) == (3, 3)
    server.fail_next = ["550 5.1.1 mailbox unavailable"] * 2
    first = send_due(engine, APRIL_RUN, smtp)
    assert len(first.failed) == 2 and len(first.sent) == 1
    resend(engine, first.failed[0], APRIL_RUN + timedelta(hours=1), reason="address fixed")
    assert len(send_due(engine, APRIL_RUN + timedelta(hours=1), smtp).sent) == 1

    # May: the other three; one has no address, and one mail is still queued at copy time.
    may = run_invoice_documents(engine, tmp / "docs", MAY_RUN, workers=1)
    assert (may.rendered, may.queued, may.skipped) == (3, 2, 1)
    assert len(send_due(engine, MAY_RUN, smtp, limit=1).sent) == 1

    db = tmp / "warehouse.duckdb"
    con = duckdb.connect(str(db))
    # the billing tables (not the payments/outbox/alerts operations tables) and the two
    # document tables the marts read
    operations = ("payments_", "ops_", "document_deliver", "invoice_documents")
    tables = [t for t in sorted(schema_metadata.tables) if not t.startswith(operations)]
    tables = [t for t in tables if t not in {"invoice_sequences", "idempotency_records"}]
    tables += ["invoice_documents", "document_deliveries"]
    copy_ledger_tables(engine, con, tables, metadata=ledger_metadata)
    raw_delivery_columns = [
        r[0]
        for r in con.execute(
            "select column_name from information_schema.columns "
            "where table_schema = 'raw' and table_name = 'ledger_document_deliveries'"
        ).fetchall()
    ]
    con.close()
    result = run_dbt(
        [
            "build",
            "--select",
            "+invoice_delivery_monthly",
            "--indirect-selection",
            "cautious",
            "--vars",
            "{as_of: '2025-06-30'}",
        ],
        db,
        tmp / "target",
    )
    with engine.connect() as conn:
        ledger = {
            name: pd.read_sql(text(f"select * from {name}"), conn)
            for name in ("invoices", "invoice_documents", "document_deliveries")
        }
    engine.dispose()
    return db, result, ledger, raw_delivery_columns, server


def _query(db: Path, sql: str) -> pd.DataFrame:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).df()
    finally:
        con.close()


def _expected(ledger: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per month of issue: issued / delivered / failed / success rate / median days to pay."""
    docs = ledger["invoice_documents"].copy()
    deliveries = ledger["document_deliveries"]
    invoices = ledger["invoices"].set_index("id")

    def status(number: str) -> str:
        mine = set(deliveries.loc[deliveries["document_number"] == number, "status"])
        if not mine:
            return "not_mailed"
        for outcome, states in (("sent", {"sent"}), ("pending", {"queued", "sending"})):
            if mine & states:
                return outcome
        return "unknown" if "unknown" in mine else "failed"

    docs["status"] = docs["number"].map(status)
    issued = pd.to_datetime(invoices["issued_at"], utc=True).dt.normalize()
    paid = pd.to_datetime(invoices["paid_at"], utc=True).dt.normalize()
    docs["days_to_pay"] = docs["invoice_id"].map((paid - issued).dt.days)
    rendered = pd.to_datetime(docs["rendered_at"], utc=True)
    docs["month"] = rendered.dt.tz_localize(None).dt.to_period("M").dt.to_timestamp()
    rows = []
    for month, g in docs.groupby("month"):
        delivered = int((g["status"] == "sent").sum())
        failed = int((g["status"] == "failed").sum())
        unknown = int((g["status"] == "unknown").sum())
        settled = delivered + failed + unknown
        rows.append(
            {
                "month": month,
                "documents_issued": len(g),
                "documents_delivered": delivered,
                "documents_failed": failed,
                "documents_pending": int((g["status"] == "pending").sum()),
                "documents_not_mailed": int((g["status"] == "not_mailed").sum()),
                "delivery_success_rate": delivered / settled if settled else None,
                "median_days_to_pay": g["days_to_pay"].median(),
            }
        )
    return pd.DataFrame(rows)


def test_the_document_marts_build_with_their_tests(built):
    _, result, *_ = built
    assert result.returncode == 0, result.stdout[-4000:]
    assert "fct_invoice_documents" in result.stdout
    assert "accepted_values_fct_invoice_documents_delivery_status" in result.stdout


def test_monthly_rollup_equals_the_ledger_computed_in_pandas(built):
    db, result, ledger, _, server = built
    assert result.returncode == 0, result.stdout[-4000:]
    got = _query(db, "select * from marts.invoice_delivery_monthly order by month")
    want = _expected(ledger)
    assert len(got) == len(want) == 2
    got["month"] = pd.to_datetime(got["month"])
    for col in (
        "documents_issued",
        "documents_delivered",
        "documents_failed",
        "documents_pending",
        "documents_not_mailed",
    ):
        assert got[col].astype(int).tolist() == want[col].tolist(), col
    assert got["month"].tolist() == want["month"].tolist()
    assert got["delivery_success_rate"].astype(float).tolist() == pytest.approx(
        want["delivery_success_rate"].astype(float).tolist()
    )
    assert got["median_days_to_pay"].astype(float).tolist() == pytest.approx(
        want["median_days_to_pay"].astype(float).tolist()
    )
    # The scenario itself, so the pandas side cannot drift with the SQL unnoticed:
    # April 2 of 3 delivered (one after a resend), 1 failed; May 1 sent, 1 queued, 1 unmailed.
    assert want["documents_issued"].tolist() == [3, 3]
    assert want["documents_delivered"].tolist() == [2, 1]
    assert want["delivery_success_rate"].tolist() == pytest.approx([2 / 3, 1.0])
    assert want["median_days_to_pay"].tolist() == pytest.approx([6.5, 6.0])
    assert len(server.messages) == 3  # April: 1 + the resend; May: 1


def test_invoice_grain_carries_attempts_resends_and_days_to_pay(built):
    db, result, ledger, _, _ = built
    assert result.returncode == 0, result.stdout[-4000:]
    fact = _query(db, "select * from marts.fct_invoice_documents order by invoice_id")
    assert len(fact) == len(ledger["invoice_documents"]) == 6
    assert fact["invoice_id"].is_unique
    deliveries = ledger["document_deliveries"]
    by_number = deliveries.groupby("document_number")
    for row in fact.itertuples():
        mine = deliveries[deliveries["document_number"] == row.invoice_number]
        assert row.deliveries == len(mine)
        assert row.attempts == int(mine["attempts"].sum())
        assert row.resends == int(mine["resend_of"].notna().sum())
    assert fact["resends"].sum() == 1 and by_number.ngroups == 5
    docs = ledger["invoice_documents"]
    langs = dict(zip(docs["invoice_id"], docs["lang"], strict=True))
    assert dict(zip(fact["invoice_id"], fact["document_lang"], strict=True)) == langs
    assert set(fact["document_lang"]) == {"en", "hi", "mr"}
    assert set(fact["template_key"].dropna()) == {"invoice_issued"}
    paid = fact.dropna(subset=["days_to_pay"])
    assert sorted(paid["days_to_pay"].astype(int)) == [3, 5, 7, 10]
    sent = fact[fact["delivery_status"] == "sent"]
    assert sent["first_sent_at"].notna().all()
    assert fact.loc[fact["delivery_status"] == "not_mailed", "template_key"].isna().all()


def test_copied_deliveries_carry_no_bodies_or_claim_tokens(built):
    _, _, ledger, raw_columns, _ = built
    assert {"text_body", "html_body", "claim_token"} <= set(ledger["document_deliveries"])
    assert raw_columns and not {"text_body", "html_body", "claim_token"} & set(raw_columns)
    assert {"status", "attempts", "sent_at", "document_number"} <= set(raw_columns)
