"""Great Expectations quality gates: row-level quarantine with reasons, table-level checks."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from ingestion.bank_files import parse_bank_settlement_csv
from ingestion.normalizers import PAYMENT_COLUMNS, normalize_razorpay, normalize_stripe
from ingestion.quality import (
    BANK_SETTLEMENTS,
    RAW_PAYMENTS,
    RAW_REFUNDS,
    RAW_SETTLEMENTS,
    REASON_COLUMN,
    WEBHOOK_EVENTS,
    QualityCheckError,
    validate_table,
)
from ingestion.webhooks.journal import encode_line, iter_landed_events

AS_OF = datetime(2026, 9, 21, 12, 0, tzinfo=UTC)


def _payment(i: int, **overrides) -> dict:
    _, row = normalize_razorpay(
        {
            "id": f"pay_{i:04d}",
            "entity": "payment",
            "amount": 49900 + i,
            "currency": "INR",
            "status": "captured",
            "method": "upi",
            "vpa": "someone@okaxis",
            "fee": 1180 if i % 2 else None,
            "tax": 180 if i % 2 else None,
            "created_at": 1790000000 + i,
        }
    )
    row.update(overrides)
    return row


def test_clean_batch_passes_whole():
    df = pd.DataFrame([_payment(i) for i in range(6)])
    assert df["fee_minor"].dtype == float  # pandas promoted ints + None to float
    result = validate_table(df, RAW_PAYMENTS)
    assert result.success
    assert len(result.valid_df) == 6 and result.quarantined_df.empty
    assert REASON_COLUMN in result.quarantined_df.columns
    assert list(result.valid_df.columns) == list(PAYMENT_COLUMNS)


def test_corrupted_batch_quarantines_exactly_the_bad_rows():
    stripe_row = normalize_stripe(
        {
            "id": "ch_ok",
            "object": "charge",
            "amount": 1000,
            "currency": "usd",
            "status": "succeeded",
            "created": 1790000000,
        }
    )[1]
    rows = [_payment(i) for i in range(10)] + [stripe_row]
    rows[1]["amount_minor"] = -500
    rows[2]["amount_minor"] = "499.00"
    rows[3]["fee_minor"] = 12.5
    rows[4]["currency"] = "XYZ"
    rows[5]["gateway_payment_id"] = None
    rows[6]["status"] = "teleported"
    rows[7]["gateway_payment_id"] = "pay_0000"  # duplicate of row 0
    rows[8]["gateway_payment_id"] = "../../etc/passwd"
    rows[9]["currency"] = "inr"  # not normalized upstream
    result = validate_table(pd.DataFrame(rows), RAW_PAYMENTS)
    assert not result.success
    reasons = dict(
        zip(
            result.quarantined_df.index,
            result.quarantined_df[REASON_COLUMN],
            strict=True,
        )
    )
    assert set(reasons) == {1, 2, 3, 4, 5, 6, 7, 8, 9}
    assert reasons[1] == "non_negative(amount_minor)"
    assert reasons[2] == "integer_minor_units(amount_minor)"
    assert reasons[3] == "integer_minor_units(fee_minor)"
    assert reasons[4] == "iso_currency(currency)"
    assert reasons[5] == "not_null(gateway_payment_id)"
    assert reasons[6] == "accepted_values(status)"
    assert reasons[7] == "unique(gateway,gateway_payment_id)"
    assert reasons[8] == "pattern(gateway_payment_id)"
    assert reasons[9] == "iso_currency(currency)"
    # The first copy of the duplicated id and the clean rows pass.
    assert sorted(result.valid_df["gateway_payment_id"]) == ["ch_ok", "pay_0000"]
    failed = {c.check: c.unexpected_count for c in result.failed_checks()}
    assert failed["unique(gateway,gateway_payment_id)"] == 1


def test_several_reasons_on_one_row_and_missing_schema():
    rows = [_payment(0, amount_minor=-1, currency="ABC")]
    result = validate_table(pd.DataFrame(rows), RAW_PAYMENTS)
    assert set(result.quarantined_df[REASON_COLUMN].iloc[0].split("; ")) == {
        "iso_currency(currency)",
        "non_negative(amount_minor)",
    }
    broken = pd.DataFrame(rows).drop(columns=["currency"])
    schema = validate_table(broken, RAW_PAYMENTS)
    assert schema.valid_df.empty and len(schema.quarantined_df) == 1
    assert "missing columns ['currency']" in schema.quarantined_df[REASON_COLUMN].iloc[0]


def test_webhook_events_from_the_landing_zone(tmp_path):
    day = tmp_path / "webhooks" / "stripe" / "2026-09-21"
    day.mkdir(parents=True)
    lines = [
        encode_line(
            received_at=(AS_OF - timedelta(minutes=i)).isoformat(),
            source="stripe",
            event_id=f"evt_{i}",
            event_type="invoice.paid",
            signature_verified=True,
            body=json.dumps({"id": f"evt_{i}"}),
        )
        for i in range(4)
    ]
    (day / "events-1-a.jsonl").write_bytes(b"".join(lines))
    events, _ = iter_landed_events(tmp_path, {})
    df = pd.DataFrame([e.as_dict() for e in events])
    df.loc[1, "received_at"] = (AS_OF + timedelta(days=2)).isoformat()  # from the future
    df.loc[2, "received_at"] = "not a time"
    df.loc[3, "signature_verified"] = False
    result = validate_table(df, WEBHOOK_EVENTS, as_of=AS_OF)
    reasons = dict(
        zip(result.quarantined_df["event_id"], result.quarantined_df[REASON_COLUMN], strict=True)
    )
    assert reasons == {
        "evt_1": "not_in_future(received_at)",
        "evt_2": "parseable_timestamp(received_at)",
        "evt_3": "accepted_values(signature_verified)",
    }
    assert list(result.valid_df["event_id"]) == ["evt_0"]
    # Freshness is a table-level check: stale data is reported, rows are not quarantined.
    stale = validate_table(df.iloc[[0]], WEBHOOK_EVENTS, as_of=AS_OF + timedelta(days=3))
    assert not stale.success and len(stale.valid_df) == 1
    [fresh] = [c for c in stale.checks if c.check.startswith("fresh(")]
    assert fresh.success is False and fresh.row_level is False
    with pytest.raises(QualityCheckError, match="as_of"):
        validate_table(df, WEBHOOK_EVENTS)


def test_bank_settlements_refunds_and_settlements_suites():
    rows, _ = parse_bank_settlement_csv(
        b"settlement_id,utr,payment_id,gross,fee,tax,net,settled_at,currency\n"
        b"setl_1,UTR1,pay_1,100.00,2.00,0.36,97.64,2026-09-20 10:00:00,INR\n"
        b"setl_1,UTR1,pay_2,50.00,1.00,0.18,48.82,2026-09-20 10:00:00,INR\n"
    )
    df = pd.DataFrame([r.as_dict() for r in rows])
    df = pd.concat([df, df.iloc[[1]]], ignore_index=True)  # a duplicated line slipped through
    result = validate_table(df, BANK_SETTLEMENTS, as_of=AS_OF)
    assert list(result.quarantined_df[REASON_COLUMN]) == ["unique(settlement_id,payment_id)"]
    assert len(result.valid_df) == 2

    refunds = pd.DataFrame(
        [
            normalize_stripe(
                {
                    "id": "re_1",
                    "object": "refund",
                    "amount": 100,
                    "currency": "inr",
                    "charge": "ch_1",
                    "status": "succeeded",
                    "created": 1790000000,
                }
            )[1],
            normalize_razorpay(
                {
                    "id": "rfnd_1",
                    "entity": "refund",
                    "amount": 100,
                    "currency": "INR",
                    "payment_id": None,
                    "status": "processed",
                    "created_at": 1790000000,
                }
            )[1],
        ]
    )
    result = validate_table(refunds, RAW_REFUNDS)
    assert list(result.quarantined_df["id"]) == ["rfnd_1"]
    assert result.quarantined_df[REASON_COLUMN].iloc[0] == "not_null(payment_id)"

    settlements = pd.DataFrame(
        [
            normalize_razorpay(
                {
                    "id": "setl_A",
                    "entity": "settlement",
                    "amount": 60000,
                    "fees": 123,
                    "tax": 12,
                    "utr": "U1",
                    "status": "processed",
                    "created_at": 1790000000,
                }
            )[1],
            normalize_razorpay(
                {
                    "id": "setl_B",
                    "entity": "settlement",
                    "amount": 100,
                    "fees": -3,
                    "tax": 0,
                    "utr": "U2",
                    "status": "settled?",
                    "created_at": 1790000000,
                }
            )[1],
        ]
    )
    result = validate_table(settlements, RAW_SETTLEMENTS)
    assert list(result.valid_df["id"]) == ["setl_A"]
    assert set(result.quarantined_df[REASON_COLUMN].iloc[0].split("; ")) == {
        "non_negative(fee_minor)",
        "accepted_values(status)",
    }
