"""Fuzzing (hypothesis) of every parser of outside input in ingestion: bank settlement files,
webhook event payloads, the gateway normalizers. Whatever arrives, the parser returns rows or
rejects naming the field; it never raises anything else. Bounded:
~100 examples per target, a few seconds each."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from billing_jobs.payments.event_parsing import IncomingEvent, MalformedEvent, parse_event
from ingestion.bank_files import BankFileError, parse_bank_settlement_csv
from ingestion.normalizers import NormalizationError, normalize_razorpay, normalize_stripe
from ingestion.normalizers.raw_rows import RAW_LISTINGS

BOUNDED = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HEADER = "settlement_id,utr,payment_id,gross,fee,tax,net,settled_at,currency"
COLUMNS = HEADER.split(",")

# JSON-ish values, with the shapes gateways send and the ones hostile senders try.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(
        [
            "",
            "inr",
            "INR",
            "usd",
            "XYZ",
            "succeeded",
            "captured",
            "failed",
            "card",
            "upi",
            "a@okhdfcbank",
            "pi_1",
            "ch_1",
            "12.50",
        ]
    ),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = ["id", "object", "entity", "amount", "currency", "created", "created_at", "status",
          "customer", "customer_id", "metadata", "notes", "latest_charge", "last_payment_error",
          "payment_method_details", "balance_transaction", "fee", "tax", "method", "card", "vpa",
          "error_reason", "type", "data", "payment_intent", "outcome", "charges"]  # fmt: skip


def _objects(kinds: list[str], kind_field: str) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries(
        {kind_field: st.sampled_from(kinds)},
        optional={f: json_values for f in FIELDS if f != kind_field},
    )


def _names_a_field(exc: NormalizationError) -> None:
    assert isinstance(exc.field, str) and exc.field, exc
    assert f"field {exc.field!r}" in str(exc)


@BOUNDED
@given(st.one_of(_objects(["payment_intent", "charge", "customer", "event", "refund", "dispute",
                           "balance_transaction", "payout", "invoice", "subscription",
                           "payment_method", "nonsense"], "object"), json_values))  # fmt: skip
def test_stripe_normalizers_never_crash(obj):
    try:
        kind, row = normalize_stripe(obj)
    except NormalizationError as exc:
        _names_a_field(exc)
    else:
        assert isinstance(row, dict) and kind == obj["object"]


@BOUNDED
@given(st.one_of(_objects(["payment", "refund", "settlement", "customer", "order", "dispute",
                           "event", "whatever"], "entity"), json_values))  # fmt: skip
def test_razorpay_normalizers_never_crash(obj):
    try:
        normalize_razorpay(obj)
    except NormalizationError as exc:
        _names_a_field(exc)


@BOUNDED
@given(st.sampled_from(sorted(RAW_LISTINGS)), st.data())
@example(("stripe", "payments"), None)  # a PaymentIntent dated beyond year 9999
def test_raw_row_normalizers_never_crash(listing, data):
    gateway, _ = listing
    kind_field, _kind = ("object", None) if gateway == "stripe" else ("entity", None)
    if data is None:
        obj = {"object": "payment_intent", "id": "pi_x", "amount": 1, "created": 2**40}
    else:
        obj = data.draw(_objects(["payment_intent", "payment", "customer", "event"], kind_field))
    _, _, columns, normalize = RAW_LISTINGS[listing]
    try:
        row = normalize(obj)
    except NormalizationError as exc:
        _names_a_field(exc)
    else:
        assert tuple(row) == columns
        for name, value in row.items():
            if name.endswith("_minor") and value is not None:
                assert isinstance(value, int) and not isinstance(value, bool), (name, value)


def _cell() -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=10),
        st.sampled_from(
            [
                "",
                "setl_1",
                "UTR1",
                "pay_1",
                "100.00",
                "1.005",
                "-5",
                "=cmd()",
                "1e3",
                "2026-01-05",
                "0001-01-01T00:00",
                "9999-12-31T23:59+14:00",
                "INR",
                "JPY",
                "XYZ",
                "1,000",
                "\x00",
                "9" * 30,
            ]
        ),
    )


@BOUNDED
@given(st.lists(st.lists(_cell(), min_size=7, max_size=10), max_size=6), st.booleans())
@example([["s1", "u1", "p1", "100.00", "2.00", "0.36", "97.64", "0001-01-01T00:00", "INR"]], False)
def test_bank_file_parser_never_crashes_and_rejects_name_the_field(lines, minor):
    header = HEADER.replace("gross", "gross_minor") if minor else HEADER
    text = "\n".join([header, *(",".join(json.dumps(c) for c in line) for line in lines)])
    try:
        rows, rejects = parse_bank_settlement_csv(text.encode())
    except BankFileError as exc:
        assert str(exc)
        return
    assert len(rows) + len(rejects) <= len(lines)
    for reject in rejects:
        assert any(
            marker in reject.reason
            for marker in (*COLUMNS, "fields", "field ", "unparseable CSV", "line ", "currency")
        ), reject.reason


@BOUNDED
@given(st.binary(max_size=200))
def test_bank_file_parser_on_arbitrary_bytes(data):
    try:
        parse_bank_settlement_csv(data)
    except BankFileError as exc:
        assert str(exc)


@BOUNDED
@given(
    st.one_of(
        st.text(max_size=40),
        st.builds(
            json.dumps,
            st.fixed_dictionaries(
                {"id": st.just("evt_1"), "type": st.just("payment_intent.succeeded")},
                optional={"data": json_values, "created": json_values},
            ),
        ),
    )
)
@example(json.dumps({"id": "evt_1", "type": "payment_intent.succeeded", "created": 2**40,
                     "data": {"object": {}}}))  # fmt: skip
def test_webhook_event_payload_parser_never_crashes(body):
    event = IncomingEvent("stripe", "evt_1", "payment_intent.succeeded", body,
                          datetime(2026, 1, 1, tzinfo=UTC))  # fmt: skip
    try:
        payload, obj, at = parse_event(event)
    except MalformedEvent as exc:
        assert any(w in str(exc) for w in ("body", "id", "type", "data.object", "created")), exc
    else:
        assert payload["id"] == "evt_1" and isinstance(obj, dict) and at.tzinfo is not None
