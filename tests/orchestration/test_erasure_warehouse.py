"""After `customers erase`, a warehouse refresh (the ledger copy with its erasure scrub, then
dbt) holds no trace of the customer's old name or e-mail in any table of any schema, while the
other customer's details are still where they belong (so the search can fail). The Stripe
customer object the gateway still returns is scrubbed on every sync."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
from sqlalchemy import insert

from billing_jobs.catalog import DEMO_CATALOG, load_catalog
from billing_jobs.customers import create_customer
from billing_jobs.ledger import make_engine, upgrade_ledger
from billing_jobs.ledger import metadata as ledger_metadata
from billing_jobs.ledger import schema as s
from billing_jobs.retention.erasure import erase_customer, erasure_scope
from billing_jobs.subscriptions.service import cancel_subscription, create_subscription
from ingestion.ledger_copy import copy_ledger_tables
from ingestion.normalizers.raw_rows import stripe_customer
from ingestion.retention import scrub_erased_customers
from orchestration.defs.ingestion.assets import LEDGER_TABLES
from tests.dbt.conftest import raw_contract, run_dbt

T0 = datetime(2025, 3, 3, tzinfo=UTC)
OLD = ("Asha Raghunathan", "asha.raghunathan@example.com")
OTHER = ("Bela Iyerkumar", "bela.iyerkumar@example.com")


def _stripe_customer(cid: int, name: str, email: str) -> dict:
    return {
        "id": f"cus_{cid}", "object": "customer", "created": int(T0.timestamp()),
        "email": email, "name": name, "phone": "+919800000000", "currency": "inr",
        "address": {"line1": "12 MG Road", "city": "Bengaluru", "country": "IN"},
        "metadata": {"paysight_customer_id": str(cid)}, "delinquent": False, "livemode": False,
    }  # fmt: skip


def _refresh(engine, con) -> None:
    copy_ledger_tables(engine, con, LEDGER_TABLES, metadata=ledger_metadata)
    scrub_erased_customers(con, erasure_scope(engine))


def _found(db, needles: tuple[str, ...]) -> set[tuple[str, str]]:
    """(needle, schema.table.column) for every text column of every table holding a needle."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        cols = con.execute(
            "select table_schema, table_name, column_name from information_schema.columns "
            "where data_type = 'VARCHAR'"
        ).fetchall()
        hits = set()
        for schema, table, column in cols:
            for needle in needles:
                n = con.execute(
                    f'select count(*) from "{schema}"."{table}" where contains(lower("{column}"), ?)',
                    [needle.lower()],
                ).fetchall()[0][0]
                if n:
                    hits.add((needle, f"{schema}.{table}.{column}"))
        return hits
    finally:
        con.close()


def test_a_refresh_after_erasure_leaves_no_trace_of_the_old_name_or_email(tmp_path):
    engine = upgrade_ledger(make_engine(f"sqlite:///{tmp_path / 'ledger.sqlite'}"))
    load_catalog(engine, DEMO_CATALOG, now=T0)
    ids = []
    for name, email in (OLD, OTHER):
        cid = create_customer(engine, name=name, email=email, state_code="29", currency="INR",
                              address_line="12 MG Road", now=T0)["id"]  # fmt: skip
        sub = create_subscription(engine, customer_id=cid, plan="scale-monthly", start=T0)
        ids.append((cid, sub["id"]))
        with engine.begin() as conn:
            conn.execute(
                insert(s.payments_gateway_customers).values(
                    customer_id=cid,
                    gateway="stripe",
                    gateway_customer_id=f"cus_{cid}",
                    created_at=T0,
                )
            )
            conn.execute(insert(s.document_deliveries).values(
                kind="invoice", template_key="invoice", recipient=email, lang="en",
                subject=f"Your invoice, {name}", text_body=name, html_body=name,
                message_id=f"m{cid}@paysight.local", status="sent", attempts=1, created_at=T0,
            ))  # fmt: skip
    db = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(db))
    con.execute("create schema raw")
    for table, cols in raw_contract().items():
        ddl = ", ".join(f'"{c}" {t}' for c, t in cols)
        con.execute(f"create table raw.{table} ({ddl})")
    for (cid, _), (name, email) in zip(ids, (OLD, OTHER), strict=True):
        row = stripe_customer(_stripe_customer(cid, name, email))
        con.execute("insert into raw.gateway_customers by name select * from "
                    "(select ?::varchar id, ?::varchar gateway, ?::timestamp created_at, "
                    "?::varchar paysight_customer_id, ?::varchar currency, ?::varchar country, "
                    "?::boolean delinquent, ?::varchar raw_json)", list(row.values()))  # fmt: skip
    _refresh(engine, con)
    con.close()
    before = _found(db, OLD)
    assert {h for _, h in before} >= {
        "raw.ledger_customers.name", "raw.ledger_customers.email",
        "raw.gateway_customers.raw_json", "raw.ledger_document_deliveries.recipient",
        "raw.ledger_document_deliveries.subject",
    }  # fmt: skip

    (cid, sub), _ = ids
    cancel_subscription(engine, sub, at=datetime(2025, 3, 20, tzinfo=UTC))
    erase_customer(engine, cid, now=datetime(2025, 4, 1, tzinfo=UTC))
    con = duckdb.connect(str(db))
    _refresh(engine, con)
    con.close()
    result = run_dbt(
        ["build", "--resource-type", "seed", "--resource-type", "model", "--vars",
         "{as_of: '2025-04-01'}"], db, tmp_path / "target"
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]

    assert _found(db, OLD) == set()
    other = {h for _, h in _found(db, OTHER)}
    assert {"restricted.customer_contacts.name", "raw.gateway_customers.raw_json"} <= other
    con = duckdb.connect(str(db), read_only=True)
    contacts = con.execute(
        "select customer_id, name, email from restricted.customer_contacts order by 1"
    ).fetchall()
    con.close()
    assert contacts[0] == (cid, f"Erased customer {cid}", None)
    engine.dispose()
