"""Catalog YAML: the demo loads, reloads are no-ops, price changes become new versions."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest
import yaml

from billing_jobs.catalog import DEMO_CATALOG, load_catalog, parse_catalog
from billing_jobs.errors import CatalogError
from billing_jobs.service import create_subscription, get_subscription, run_billing

T = datetime(2025, 6, 1, tzinfo=UTC)


def _doc() -> dict:
    return yaml.safe_load(DEMO_CATALOG.read_text())


def test_demo_catalog_loads_and_reload_is_noop(engine, count) -> None:
    first = load_catalog(engine, DEMO_CATALOG, now=T)
    assert "growth-monthly" in first.new_plan_versions
    assert len(first.new_plan_versions) == count(engine, "plans") == 10
    again = load_catalog(engine, DEMO_CATALOG, now=T)
    assert again.new_plan_versions == [] and again.new_product_versions == []
    assert count(engine, "plans") == 10


def test_price_change_is_new_version_and_running_subscriptions_keep_theirs(
    ledger, new_customer, count
) -> None:
    cid = new_customer(ledger)
    start = datetime(2026, 1, 5, tzinfo=UTC)
    sub = create_subscription(ledger, customer_id=cid, plan="scale-monthly", start=start)
    doc = _doc()
    for plan in doc["plans"]:
        if plan["code"] == "scale-monthly":
            plan["prices"]["INR"] = "11999.00"
    res = load_catalog(ledger, doc, now=start)
    assert res.new_plan_versions == ["scale-monthly"]
    new_cid = new_customer(ledger, name="Later Customer")
    later = create_subscription(ledger, customer_id=new_cid, plan="scale-monthly", start=start)
    assert later["items"][0]["plan_version"] == 2
    assert get_subscription(ledger, sub["id"])["items"][0]["plan_version"] == 1
    run_billing(ledger, datetime(2026, 2, 6, tzinfo=UTC))
    with ledger.connect() as conn:
        from sqlalchemy import text

        amounts = conn.execute(
            text(
                "SELECT subtotal_minor FROM invoices WHERE subscription_id = :s "
                "ORDER BY period_start"
            ),
            {"s": sub["id"]},
        ).scalars()
        assert list(amounts) == [999900, 999900]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("supplier"), "supplier"),
        (lambda d: d["supplier"].update(gstin="29AAGCP4231K1Z8"), "checksum"),
        (lambda d: d["plans"][0].update(interval="week"), "week"),
        (lambda d: d["plans"][0].update(product="nope"), "unknown product"),
        (lambda d: d["plans"][0]["prices"].update(INR=999.0), "quoted strings"),
        (lambda d: d["plans"][0]["prices"].update(INR="999.001"), "decimal places"),
        (lambda d: d["plans"][0]["prices"].update(XYZ="9.00"), "unknown currency"),
        (lambda d: d["plans"][0].update(interval_count=0), "interval_count"),
        (lambda d: d["plans"].append(copy.deepcopy(d["plans"][0])), "duplicate plan"),
        (lambda d: d["products"][0].update(sac="000000"), "no GST rate"),
        (lambda d: d["coupons"][0].update(percent_off="120"), "percent_off"),
        (lambda d: d["coupons"][0].pop("duration_in_periods"), "duration_in_periods"),
        (lambda d: d["coupons"][1].pop("currency"), "currency"),
        (lambda d: d["plans"][7]["prices"]["INR"][0].update(up_to=100), "increase"),
        (lambda d: d["plans"][7]["prices"]["INR"][-1].update(up_to=500), "last tier"),
    ],
)
def test_malformed_catalogs_are_refused(mutate, message) -> None:
    doc = _doc()
    mutate(doc)
    with pytest.raises(CatalogError, match=message):
        parse_catalog(doc)


def test_bad_catalog_writes_nothing(engine, count) -> None:
    doc = _doc()
    doc["coupons"][0]["percent_off"] = "-5"
    with pytest.raises(CatalogError):
        load_catalog(engine, doc, now=T)
    assert count(engine, "plans") == 0


def test_coupons_are_immutable(engine) -> None:
    load_catalog(engine, DEMO_CATALOG, now=T)
    doc = _doc()
    doc["coupons"][0]["percent_off"] = "25"
    with pytest.raises(CatalogError, match="immutable"):
        load_catalog(engine, doc, now=T)


def test_invalid_yaml(tmp_path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("plans: [\n")
    with pytest.raises(CatalogError, match="not valid YAML"):
        load_catalog(None, p, now=T)  # type: ignore[arg-type]
