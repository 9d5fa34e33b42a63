"""Issue #17: the catalog loader refuses ambiguous YAML, and every display name of every
catalog in the repository reaches the ledger and the invoice exactly as written."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from billing_jobs.catalog import DEMO_CATALOG, load_catalog, parse_catalog, read_catalog_file
from billing_jobs.catalog.snapshot import load_snapshot
from billing_jobs.errors import CatalogError
from billing_jobs.service import create_subscription, get_invoice
from billing_jobs.subscriptions.charges import charges_of

T = datetime(2026, 4, 1, tzinfo=UTC)
CATALOGS = sorted(DEMO_CATALOG.parent.glob("*.yaml"))


def _written(text: str, name: str) -> bool:
    """`name` appears in the source as a whole value: quoted, or alone up to the line end."""
    n = re.escape(name)
    return re.search(rf"name: (\"{n}\"|'{n}'|{n}\s*$)", text, re.M) is not None


@pytest.mark.parametrize("path", CATALOGS, ids=[p.name for p in CATALOGS])
def test_every_display_name_round_trips(path: Path, engine) -> None:
    text = path.read_text(encoding="utf-8")
    spec = read_catalog_file(path)
    load_catalog(engine, path, now=T)
    with engine.connect() as conn:
        snap = load_snapshot(conn)
    names = {p.code: p.name for p in spec.plans}
    assert {snap.plans[i].code: snap.plans[i].name for i in snap.current.values()} == names
    for name in [*names.values(), *(p.name for p in spec.products)]:
        assert _written(text, name), f"{name!r} is not in {path.name} as written"
        assert yaml.safe_load(yaml.safe_dump(name)) == name


def test_the_demo_plan_name_with_a_comma_reaches_the_invoice(ledger, new_customer) -> None:
    cid = new_customer(ledger)
    sub = create_subscription(ledger, customer_id=cid, plan="growth-monthly", quantity=3,
                              trial_days=0, start=T)  # fmt: skip
    with ledger.connect() as conn:
        (charge,) = charges_of(conn, sub["id"])
    (line,) = get_invoice(ledger, charge["invoice_id"])["lines"]
    assert line["description"].startswith("Growth (monthly, per seat) × 3 (")


def _demo_with(tmp_path: Path, old: str, new: str) -> Path:
    text = DEMO_CATALOG.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "catalog.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        # the line as it was: the comma splits the name and leaves a field "per seat)"
        ('name: "Growth (monthly, per seat)"', "name: Growth (monthly, per seat)",
         r"unknown field 'per seat\)'.*quote the value"),
        ('name: "Starter (monthly)"', "name: Starter (monthly", "unbalanced brackets"),
        ('name: "Scale (monthly)"', "name: yes", "read as bool, not text; quote it"),
        ('sac: "998314"', "sac: 998314", "read as int, not text; quote it"),
        ("invoice_prefix: INV", "invoice_prefix: INV\ninvoice_prefix: BILL", "given twice"),
        ("  city: Bengaluru", "  city: Bengaluru\n  town: Bengaluru", "unknown field 'town'"),
        ('{code: LAUNCH20, percent_off: "20",', '{code: LAUNCH20, percent_off: "20", per: 3,',
         "coupons\\[0\\]: unknown field 'per'"),
    ],
)  # fmt: skip
def test_ambiguous_yaml_is_refused_with_a_clear_message(tmp_path, old, new, needle) -> None:
    path = _demo_with(tmp_path, old, new)
    with pytest.raises(CatalogError, match=needle) as err:
        read_catalog_file(path)
    assert str(path) in str(err.value)


def test_mappings_are_checked_the_same_way() -> None:
    doc = yaml.safe_load(DEMO_CATALOG.read_text(encoding="utf-8"))
    doc["plans"][0]["colour"] = "blue"
    with pytest.raises(CatalogError, match=r"plans\[0\]: unknown field 'colour'"):
        parse_catalog(doc)


def test_supplier_address_is_loaded_into_the_settings(ledger) -> None:
    from sqlalchemy import select

    from billing_jobs.ledger import schema as s

    with ledger.connect() as conn:
        conf = dict(conn.execute(select(s.settings.c.key, s.settings.c.value)).all())
    assert conf["supplier_address"] == "3rd Floor, 42 Hosur Road, Koramangala"
    assert (conf["supplier_city"], conf["supplier_postal_code"]) == ("Bengaluru", "560095")
