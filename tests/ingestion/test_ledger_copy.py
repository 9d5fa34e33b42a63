"""Copying ledger tables into raw.ledger_*: incremental by cursor, idempotent, typed money."""

from datetime import UTC, datetime, timedelta

import duckdb
import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    insert,
    update,
)

from ingestion.ledger_copy import LedgerCopyError, copy_ledger_tables

T0 = datetime(2025, 4, 1, 10, 0, tzinfo=UTC).replace(tzinfo=None)


@pytest.fixture
def ledger(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    meta = MetaData()
    invoices = Table(
        "invoices",
        meta,
        Column("id", Integer, primary_key=True),
        Column("total_minor", BigInteger, nullable=True),
        Column("currency", String(3)),
        Column("status", String(16)),
        Column("updated_at", DateTime),
    )
    Table("plans", meta, Column("id", Integer, primary_key=True), Column("code", String(20)))
    events = Table(
        "events", meta, Column("id", Integer, primary_key=True), Column("kind", String(20))
    )
    Table(
        "pairs",
        meta,
        Column("a", Integer, primary_key=True),
        Column("b", Integer, primary_key=True),
    )
    Table(
        "links",
        meta,
        Column("customer_id", Integer, primary_key=True),
        Column("gateway", String(16), primary_key=True),
        Column("ref", String(20), nullable=False),
        Column("updated_at", DateTime, nullable=False),
    )
    Table("keyless", meta, Column("note", String(20)))
    meta.create_all(engine)
    with engine.begin() as c:
        c.execute(
            insert(invoices),
            [
                {
                    "id": i,
                    "total_minor": 59_000 * i,
                    "currency": "INR",
                    "status": "open",
                    "updated_at": T0 + timedelta(minutes=i),
                }
                for i in range(1, 6)
            ],
        )
        c.execute(insert(meta.tables["plans"]), [{"id": 1, "code": "starter"}])
        c.execute(insert(events), [{"id": i, "kind": "created"} for i in (1, 2, 3)])
    return engine, meta


def test_incremental_copy_is_idempotent_and_picks_up_changes(ledger, tmp_path):
    engine, meta = ledger
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    first = {
        c.table: c
        for c in copy_ledger_tables(
            engine, con, ["invoices", "plans", "events"], append_only=frozenset({"events"})
        )
    }
    assert first["invoices"].rows == 5 and first["invoices"].mode == "incremental"
    assert first["plans"].mode == "full"
    assert first["events"].mode == "append" and first["events"].rows == 3
    cursors = {"invoices": first["invoices"].cursor}

    again = {c.table: c for c in copy_ledger_tables(engine, con, ["invoices"], cursors)}
    assert again["invoices"].rows == 1  # only the row at the cursor instant is re-read
    assert con.execute("select count(*) from raw.ledger_invoices").fetchone()[0] == 5

    with engine.begin() as c:
        c.execute(
            update(meta.tables["invoices"])
            .where(meta.tables["invoices"].c.id == 2)
            .values(status="paid", updated_at=T0 + timedelta(hours=1))
        )
        c.execute(
            insert(meta.tables["invoices"]).values(
                id=6,
                total_minor=None,
                currency="INR",
                status="draft",
                updated_at=T0 + timedelta(hours=2),
            )
        )
    third = {c.table: c for c in copy_ledger_tables(engine, con, ["invoices"], cursors)}
    assert third["invoices"].rows == 3
    rows = dict(con.execute("select id, status from raw.ledger_invoices").fetchall())
    assert len(rows) == 6 and rows[2] == "paid"
    types = dict(
        con.execute(
            "select column_name, data_type from information_schema.columns where table_name = 'ledger_invoices'"
        ).fetchall()
    )
    assert types["total_minor"] == "BIGINT"


def test_unknown_and_unkeyable_tables_are_refused(ledger, tmp_path):
    engine, _ = ledger
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    with pytest.raises(LedgerCopyError, match="unknown ledger tables"):
        copy_ledger_tables(engine, con, ["nope"])
    with pytest.raises(LedgerCopyError, match="single-column primary key for an append-only"):
        copy_ledger_tables(engine, con, ["pairs"], append_only=frozenset({"pairs"}))
    assert copy_ledger_tables(engine, con, ["pairs"])[0].mode == "full"  # no key needed
    assert copy_ledger_tables(engine, con, ["keyless"])[0].mode == "full"


def test_composite_keys_are_upserted_on_every_column_of_the_key(ledger, tmp_path):
    engine, meta = ledger
    links = meta.tables["links"]
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    with engine.begin() as c:
        c.execute(
            insert(links),
            [
                {"customer_id": 1, "gateway": "stripe", "ref": "cus_1", "updated_at": T0},
                {"customer_id": 1, "gateway": "razorpay", "ref": "cust_1", "updated_at": T0},
                {
                    "customer_id": 2,
                    "gateway": "stripe",
                    "ref": "cus_2",
                    "updated_at": T0 + timedelta(minutes=1),
                },
            ],
        )
    first = copy_ledger_tables(engine, con, ["links"])[0]
    assert (first.mode, first.rows) == ("incremental", 3)
    with engine.begin() as c:
        # same customer, one gateway changed: only that (customer_id, gateway) row is replaced
        later = T0 + timedelta(hours=1)
        c.execute(
            update(links)
            .where(links.c.customer_id == 1, links.c.gateway == "stripe")
            .values(ref="cus_1b", updated_at=later)
        )
    second = copy_ledger_tables(engine, con, ["links"], {"links": first.cursor})[0]
    assert second.rows == 2  # the changed row and the one at the cursor instant
    again = copy_ledger_tables(engine, con, ["links"], {"links": second.cursor})[0]
    assert again.rows == 1  # the row at the cursor instant, upserted without a duplicate
    rows = con.execute("select customer_id, gateway, ref from raw.ledger_links order by 1, 2")
    assert rows.fetchall() == [
        (1, "razorpay", "cust_1"),
        (1, "stripe", "cus_1b"),
        (2, "stripe", "cus_2"),
    ]


def test_append_only_tables_copy_only_new_ids(ledger, tmp_path):
    engine, meta = ledger
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    only = frozenset({"events"})
    first = copy_ledger_tables(engine, con, ["events"], append_only=only)[0]
    with engine.begin() as c:
        c.execute(insert(meta.tables["events"]), [{"id": 4, "kind": "paused"}])
    second = copy_ledger_tables(
        engine, con, ["events"], {"events": first.cursor}, append_only=only
    )[0]
    assert (first.rows, second.rows, second.cursor) == (3, 1, "4")
    assert con.execute("select count(*) from raw.ledger_events").fetchone()[0] == 4
