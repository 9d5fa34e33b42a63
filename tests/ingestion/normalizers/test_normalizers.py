"""Normalizers over the real Stripe and Razorpay reference objects, plus malformed input."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest

from ingestion.normalizers import (
    PAYMENT_COLUMNS,
    NormalizationError,
    normalize_razorpay,
    normalize_stripe,
)
from tests.ingestion.normalizers.reference_data import razorpay_entities, stripe_resources

STRIPE_KINDS = [
    "charge",
    "payment_intent",
    "refund",
    "dispute",
    "balance_transaction",
    "payout",
    "event",
    "invoice",
    "subscription",
    "customer",
    "payment_method",
]
DROPPED = {"vpa", "client_secret"}  # deliberately not kept (personal / secret)


def _assert_nothing_lost(obj: dict, row: dict) -> None:
    """Every top-level field is either in `extra` or its value is in a column."""
    extra = json.loads(row["extra"])
    values = list(row.values())
    for key, value in obj.items():
        if key in extra or key in DROPPED or value is None:
            continue
        candidates = {repr(value)}
        if isinstance(value, str):
            candidates.add(repr(value.upper()))
        if isinstance(value, int) and not isinstance(value, bool) and value > 10**8:
            candidates.add(repr(datetime.fromtimestamp(value, tz=UTC)))
        if isinstance(value, dict) and "id" in value:
            candidates.add(repr(value["id"]))
        assert candidates & {repr(v) for v in values}, f"{key}={value!r} lost"


@pytest.mark.parametrize("kind", STRIPE_KINDS)
def test_every_stripe_reference_object_normalizes(kind):
    obj = stripe_resources()[kind]
    got_kind, row = normalize_stripe(obj)
    assert got_kind == kind
    _assert_nothing_lost(obj, row)
    for column, value in row.items():
        if column.endswith("_minor"):
            assert value is None or type(value) is int, column
        if column == "currency" and value is not None:
            assert value == value.upper() and len(value) == 3
    assert "4242424242424242" not in json.dumps(row, default=str)


def test_every_razorpay_reference_entity_normalizes():
    entities = razorpay_entities()
    kinds = {e["entity"] for _, e in entities}
    assert {"payment", "refund", "settlement", "settlement.ondemand", "dispute", "order"} <= kinds
    assert {"customer", "invoice", "subscription", "event"} <= kinds
    for name, obj in entities:
        if obj["entity"] in ("event",) or obj.get("id"):
            kind, row = normalize_razorpay(obj)
            assert kind == obj["entity"], name
            _assert_nothing_lost(obj, row)


def test_stripe_charge_keeps_every_mart_field():
    charge = copy.deepcopy(stripe_resources()["charge"])
    charge.update(
        customer="cus_42",
        invoice="in_42",
        currency="inr",
        amount=49900,
        status="failed",
        failure_code="card_declined",
        outcome={"type": "issuer_declined", "reason": "insufficient_funds"},
        balance_transaction={
            "id": "txn_42",
            "object": "balance_transaction",
            "fee": 1180,
            "fee_details": [
                {"type": "stripe_fee", "amount": 1000},
                {"type": "tax", "amount": 180},
            ],
        },
    )
    charge["payment_method_details"]["card"]["network"] = "rupay"
    charge["payment_method_details"]["card"]["issuer"] = "HDFC"
    _, row = normalize_stripe(charge)
    assert set(row) == set(PAYMENT_COLUMNS)
    assert row["gateway_payment_id"] == charge["id"]
    assert row["amount_minor"] == 49900 and row["currency"] == "INR"
    assert row["status"] == "failed"
    assert row["created_at"] == datetime(2009, 2, 13, 23, 31, 30, tzinfo=UTC)
    assert (row["customer_id"], row["invoice_id"]) == ("cus_42", "in_42")
    assert (row["method"], row["card_network"], row["card_issuer"]) == ("card", "rupay", "HDFC")
    assert row["decline_code"] == "insufficient_funds"
    assert (row["fee_minor"], row["fee_tax_minor"]) == (1180, 180)
    assert row["balance_transaction_id"] == "txn_42"
    assert row["payment_method_id"] == charge["payment_method"]


def test_stripe_upi_and_netbanking_charges():
    charge = copy.deepcopy(stripe_resources()["charge"])
    charge["payment_method_details"] = {"type": "upi", "upi": {"vpa": "priya.s@okhdfcbank"}}
    _, row = normalize_stripe(charge)
    assert (row["method"], row["vpa_handle"]) == ("upi", "okhdfcbank")
    assert "priya.s" not in row["extra"]
    charge["payment_method_details"] = {"type": "netbanking", "netbanking": {"bank": "icici"}}
    assert normalize_stripe(charge)[1]["bank"] == "icici"


def test_razorpay_payment_keeps_every_mart_field():
    webhook = next(e for n, e in razorpay_entities() if n == "fake_payment_authorized_webhook.json")
    pay = copy.deepcopy(webhook["payload"]["payment"]["entity"])
    pay.update(
        customer_id="cust_9",
        invoice_id="inv_9",
        settlement_id="setl_9",
        card={"network": "RuPay", "type": "debit", "issuer": "SBIN", "number": "6521000000000000"},
        error_code="BAD_REQUEST_ERROR",
    )
    _, row = normalize_razorpay(pay)
    assert set(row) == set(PAYMENT_COLUMNS)
    assert row["gateway_payment_id"] == "pay_6koWN7bvxujzxM"
    assert (row["amount_minor"], row["currency"], row["status"]) == (1000000, "INR", "captured")
    assert row["created_at"] == datetime.fromtimestamp(1479978483, tz=UTC)
    assert (row["customer_id"], row["invoice_id"], row["order_id"]) == (
        "cust_9",
        "inv_9",
        "order_100000000order",
    )
    assert (row["method"], row["card_network"], row["card_funding"], row["card_issuer"]) == (
        "card",
        "RuPay",
        "debit",
        "SBIN",
    )
    assert (row["fee_minor"], row["fee_tax_minor"]) == (23000, 3000)  # service_tax
    assert row["decline_code"] == "BAD_REQUEST_ERROR"
    assert row["settlement_id"] == "setl_9"
    assert "6521000000000000" not in row["extra"]


def test_razorpay_upi_wallet_netbanking_payment():
    base = {"id": "pay_U", "entity": "payment", "amount": 100, "currency": "inr",
            "created_at": 1700000000, "status": "failed"}  # fmt: skip
    _, upi = normalize_razorpay({**base, "method": "upi", "vpa": "ravi.k@ybl", "upi_pin": "1234"})
    assert (upi["method"], upi["vpa_handle"], upi["currency"]) == ("upi", "ybl", "INR")
    assert "ravi.k" not in upi["extra"] and "1234" not in upi["extra"]
    _, wallet = normalize_razorpay({**base, "method": "wallet", "wallet": "paytm"})
    assert wallet["wallet"] == "paytm"
    _, nb = normalize_razorpay({**base, "method": "netbanking", "bank": "HDFC"})
    assert nb["bank"] == "HDFC"


def test_razorpay_settlement_and_recon_line():
    _, setl = normalize_razorpay(
        {
            "id": "setl_1",
            "entity": "settlement",
            "amount": 60000,
            "status": "processed",
            "fees": 123,
            "tax": 12,
            "utr": "RZRP1",
            "created_at": 1455696913,
        }
    )
    assert (setl["amount_minor"], setl["fee_minor"], setl["tax_minor"]) == (60000, 123, 12)
    assert setl["currency"] == "INR" and setl["utr"] == "RZRP1"
    recon = {
        "entity_id": "pay_DEXrnipqTmWVGE",
        "type": "payment",
        "debit": 0,
        "credit": 97100,
        "amount": 100000,
        "currency": "INR",
        "fee": 2900,
        "tax": 0,
        "on_hold": False,
        "settled": True,
        "created_at": 1567692556,
        "settled_at": 1568176960,
        "settlement_id": "setl_DGlQ1Rj8os78Ec",
        "posted_at": None,
        "credit_type": "default",
        "description": "Recurring Payment via Subscription",
        "notes": "{}",
        "payment_id": None,
        "settlement_utr": "1568176960vxp0rj",
        "order_id": "order_DEXrnRiR3SNDHA",
        "order_receipt": None,
        "method": "card",
        "card_network": "MasterCard",
        "card_issuer": "KARB",
        "card_type": "credit",
        "dispute_id": None,
    }
    kind, row = normalize_razorpay(recon)
    assert kind == "settlement.recon"
    assert (row["entity_id"], row["settlement_id"], row["settlement_utr"]) == (
        "pay_DEXrnipqTmWVGE",
        "setl_DGlQ1Rj8os78Ec",
        "1568176960vxp0rj",
    )
    assert (row["amount_minor"], row["fee_minor"], row["credit_minor"]) == (100000, 2900, 97100)
    _assert_nothing_lost(recon, row)


@pytest.mark.parametrize(
    ("mutation", "field", "problem"),
    [
        ({"id": None}, "id", "non-empty string id"),
        ({"id": ""}, "id", "non-empty string id"),
        ({"amount": "100"}, "amount", "integer count of minor units"),
        ({"amount": 1.5}, "amount", "integer count of minor units"),
        ({"amount": True}, "amount", "integer count of minor units"),
        ({"currency": "xyz"}, "currency", "unknown currency"),
        ({"currency": 5}, "currency", "ISO-4217"),
        ({"created": "yesterday"}, "created", "epoch seconds"),
    ],
)
def test_malformed_stripe_charge_names_the_field(mutation, field, problem):
    charge = {**stripe_resources()["charge"], **mutation}
    with pytest.raises(NormalizationError) as err:
        normalize_stripe(charge)
    assert err.value.field == field
    assert repr(field) in str(err.value) and problem in str(err.value)


def test_malformed_razorpay_and_unknown_types():
    with pytest.raises(NormalizationError, match="'amount'"):
        normalize_razorpay({"id": "pay_1", "entity": "payment", "amount": "500", "created_at": 1})
    with pytest.raises(NormalizationError, match="'id'"):
        normalize_razorpay({"entity": "refund", "amount": 5, "created_at": 1})
    with pytest.raises(NormalizationError, match="'currency'"):
        normalize_razorpay(
            {"id": "r", "entity": "refund", "amount": 5, "currency": "RUPEES", "created_at": 1}
        )
    with pytest.raises(NormalizationError, match="'entity'"):
        normalize_razorpay({"entity": "collection", "items": []})
    with pytest.raises(NormalizationError, match="unsupported object type"):
        normalize_stripe({"id": "x", "object": "spaceship"})
    with pytest.raises(NormalizationError):
        normalize_stripe(["not", "an", "object"])  # type: ignore[arg-type]


def test_card_secrets_are_stripped_at_any_depth():
    pm = copy.deepcopy(stripe_resources()["payment_method"])
    pm["card"]["number"] = "4000056655665556"
    pm["card"]["cvc"] = "123"
    pm["metadata"] = {"nested": [{"cvv": "999", "CVV": "998", "keep": "ok"}]}
    _, row = normalize_stripe(pm)
    for secret in ("4000056655665556", '"123"', "999", "998"):
        assert secret not in row["extra"]
    assert '"keep":"ok"' in row["extra"]
    assert row["card_brand"] == "visa" and row["type"] == "card"


def test_normalize_objects_groups_rows_by_table():
    from ingestion.normalizers import normalize_objects

    resources = stripe_resources()
    tables = normalize_objects(
        "stripe", [resources["charge"], resources["refund"], resources["charge"]]
    )
    assert {k: len(v) for k, v in tables.items()} == {"charge": 2, "refund": 1}
    with pytest.raises(ValueError, match="unknown gateway"):
        normalize_objects("paypal", [])
