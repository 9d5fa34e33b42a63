"""Copying invoice documents and mail deliveries: keyed (out-of-order ids are not missed),
open deliveries re-read until final, and bodies/claim tokens never leave the ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
import yaml
from sqlalchemy import insert, update

from billing_jobs.ledger import metadata as ledger_metadata
from billing_jobs.ledger import upgrade_ledger
from billing_jobs.ledger.schema import document_deliveries, invoice_documents
from ingestion.ledger_copy import copy_ledger_tables

T0 = datetime(2025, 5, 1, 9, 0, tzinfo=UTC)
SOURCES = Path(__file__).resolve().parents[2] / "dbt_project/models/staging/_raw__sources.yml"
SECRET_COLUMNS = {"text_body", "html_body", "claim_token"}


@pytest.fixture
def ledger(tmp_path: Path):
    engine = upgrade_ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    yield engine
    engine.dispose()


def _doc(invoice_id: int) -> dict:
    return {
        "invoice_id": invoice_id,
        "number": f"INV/2526/{invoice_id:06d}",
        "path": f"2526/INV_2526_{invoice_id:06d}.pdf",
        "sha256": f"{invoice_id:064x}",
        "lang": "hi" if invoice_id % 2 else "en",
        "rendered_at": T0 + timedelta(minutes=invoice_id),
    }


def _delivery(delivery_id: int, status: str = "queued", **extra: object) -> dict:
    return {
        "id": delivery_id,
        "kind": "tax_invoice",
        "template_key": "invoice_issued",
        "dedupe_key": f"tax_invoice:2526:{delivery_id}:a@example.in",
        "document_number": f"INV/2526/{delivery_id:06d}",
        "recipient": "a@example.in",
        "lang": "en",
        "subject": "Invoice",
        "text_body": "Dear Asha, your PAN ABCDE1234F ...",
        "html_body": "<p>Dear Asha</p>",
        "message_id": f"<{delivery_id}@paysight.test>",
        "status": status,
        "attempts": 0,
        "next_attempt_at": T0,
        "created_at": T0,
        **extra,
    }


def _copy(engine, con, cursors=None):
    out = copy_ledger_tables(
        engine, con, ["invoice_documents", "document_deliveries"], cursors, ledger_metadata
    )
    return {c.table: c for c in out}


def _columns(con, table: str) -> list[str]:
    rows = con.execute(
        "select column_name from information_schema.columns where table_schema = 'raw' "
        "and table_name = ? order by ordinal_position",
        [table],
    ).fetchall()
    return [r[0] for r in rows]


def test_empty_tables_still_match_the_raw_contract_without_secrets(ledger, tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    copies = _copy(ledger, con)
    assert {c.rows for c in copies.values()} == {0}
    contract = {
        t["name"]: [c["name"] for c in t["columns"]]
        for t in yaml.safe_load(SOURCES.read_text())["sources"][0]["tables"]
    }
    for table in ("invoice_documents", "document_deliveries"):
        cols = _columns(con, f"ledger_{table}")
        assert cols == contract[f"ledger_{table}"]
        assert not SECRET_COLUMNS & set(cols)


def test_documents_copied_once_even_when_ids_arrive_out_of_order(ledger, tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    with ledger.begin() as c:
        c.execute(insert(invoice_documents), [_doc(i) for i in (4, 9, 12)])
    first = _copy(ledger, con)["invoice_documents"]
    assert (first.rows, first.mode) == (3, "keyed")
    # A draft finalized late: its (lower) invoice id is rendered after invoice 12.
    with ledger.begin() as c:
        c.execute(insert(invoice_documents), [_doc(2), _doc(13)])
    assert _copy(ledger, con)["invoice_documents"].rows == 2
    assert _copy(ledger, con)["invoice_documents"].rows == 0  # nothing new: nothing read
    got = con.execute(
        "select invoice_id, lang, rendered_at from raw.ledger_invoice_documents order by 1"
    ).fetchall()
    assert [r[0] for r in got] == [2, 4, 9, 12, 13]
    assert got[0][1] == "en" and got[1][2] == (T0 + timedelta(minutes=4)).replace(tzinfo=None)


def test_deliveries_recopied_until_final_and_never_with_bodies(ledger, tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    t = document_deliveries
    with ledger.begin() as c:
        c.execute(insert(t), [_delivery(i) for i in (10, 11, 12)])
    assert _copy(ledger, con)["document_deliveries"].rows == 3
    with ledger.begin() as c:
        c.execute(
            update(t)
            .where(t.c.id == 10)
            .values(status="sending", claim_token="0f8f-secret", claimed_at=T0, attempts=1)
        )
        c.execute(
            update(t)
            .where(t.c.id == 11)
            .values(status="sent", sent_at=T0 + timedelta(minutes=1), attempts=1)
        )
        c.execute(
            update(t)
            .where(t.c.id == 12)
            .values(status="failed", attempts=5, last_error="550 mailbox unavailable")
        )
        c.execute(insert(t), _delivery(5))  # id reserved earlier, committed later
    assert _copy(ledger, con)["document_deliveries"].rows == 4  # 3 open + 1 new
    with ledger.begin() as c:
        c.execute(update(t).where(t.c.id == 10).values(status="sent", claim_token=None))
        # Final rows are not re-read: a (forbidden) edit of a sent row stays unseen.
        c.execute(update(t).where(t.c.id == 11).values(attempts=99))
    third = _copy(ledger, con)["document_deliveries"]
    assert third.rows == 2  # 10 (was sending) and 5 (was queued)
    rows = {
        r[0]: r[1:]
        for r in con.execute(
            "select id, status, attempts, last_error from raw.ledger_document_deliveries"
        ).fetchall()
    }
    assert rows == {
        5: ("queued", 0, None),
        10: ("sent", 1, None),
        11: ("sent", 1, None),
        12: ("failed", 5, "550 mailbox unavailable"),
    }
    cols = set(_columns(con, "ledger_document_deliveries"))
    assert not SECRET_COLUMNS & cols and {"status", "sent_at", "resend_of"} <= cols
    dump = con.execute("select * from raw.ledger_document_deliveries").fetchall()
    assert not any("secret" in str(v) or "Dear" in str(v) for row in dump for v in row)
