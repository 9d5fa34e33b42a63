"""The retention policy file: the shipped one loads, every hostile case is refused with a message
naming the class and key, and cut-offs follow the Indian financial year (April 1 - March 31)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml

from billing_jobs.retention.policy import (
    CLASSES,
    DEFAULT_POLICY,
    RetentionPolicyError,
    load_policy,
    parse_policy,
)


def _doc(**changes: object) -> str:
    doc = yaml.safe_load(DEFAULT_POLICY.read_text())
    for cls, spec in changes.items():
        if spec is None:
            del doc["classes"][cls]
        else:
            doc["classes"][cls] = spec
    return yaml.safe_dump(doc)


def test_the_shipped_policy_is_the_issues():
    policy = load_policy()
    assert {c: p.describe() for c, p in policy.periods.items()} == {
        "payments": "7 years",
        "ledger": "7 years",
        "invoices": "8 years from the end of the financial year",
        "webhook_bodies": "90 days",
        "analytics": "3 years",
    }


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (_doc(archive={"keep": 1, "unit": "years", "from": "created"}), "unknown class(es) archive"),
        (_doc(payments=None), "missing class(es) payments"),
        (_doc(ledger={"keep": 0, "unit": "years", "from": "created"}), "'ledger': keep must be greater than 0"),
        (_doc(ledger={"keep": -7, "unit": "years", "from": "created"}), "greater than 0, got -7"),
        (_doc(ledger={"keep": 1.5, "unit": "years", "from": "created"}), "whole number, got 1.5"),
        (_doc(ledger={"keep": True, "unit": "years", "from": "created"}), "whole number, got True"),
        (_doc(ledger={"keep": "7", "unit": "years", "from": "created"}), "whole number, got '7'"),
        (_doc(ledger={"keep": 7, "unit": "weeks", "from": "created"}), "unknown unit 'weeks'"),
        (_doc(ledger={"keep": 7, "unit": "years", "from": "birthday"}), "unknown from 'birthday'"),
        (_doc(ledger={"keep": 7, "unit": "years"}), "'ledger': missing key(s) from"),
        (_doc(ledger={"unit": "years", "from": "created"}), "missing key(s) keep"),
        (_doc(ledger={"keep": 7, "unit": "years", "from": "created", "archive": True}), "unknown key(s) archive"),
        (_doc(ledger={"keep": 40000, "unit": "days", "from": "created"}), "over 100 years"),
        (_doc(ledger="7 years"), "expected keep/unit/from"),
        ("classes:\n  payments: {keep: 7, keep: 8, unit: years, from: created}\n", "key 'keep' is given twice"),
        ("classes: [payments]\n", "classes must map"),
        ("retention: {}\n", "exactly one top-level key"),
        ("", "exactly one top-level key"),
        ("classes: {payments: [unclosed\n", "not valid YAML"),
        ("!!python/object/apply:os.system ['true']\n", "not valid YAML"),
    ],
)  # fmt: skip
def test_a_hostile_policy_is_refused_naming_what_is_wrong(text, needle):
    with pytest.raises(RetentionPolicyError) as err:
        parse_policy(text)
    assert needle in str(err.value)


def test_an_unreadable_policy_file_is_named(tmp_path):
    with pytest.raises(RetentionPolicyError, match="cannot read retention policy"):
        load_policy(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"\xff\xfe classes")
    with pytest.raises(RetentionPolicyError, match="cannot read retention policy"):
        load_policy(bad)


def test_cutoffs_count_from_the_record_or_the_end_of_its_financial_year():
    policy = load_policy()
    # 2034-04-01 00:00 IST: the year 2025-26 ended eight years before, so what was issued in it
    # (before 2026-04-01 IST) has expired; one second earlier nothing of it has.
    as_of = datetime(2034, 3, 31, 18, 30, tzinfo=UTC)
    assert policy.cutoff("invoices", as_of) == datetime(2026, 3, 31, 18, 30, tzinfo=UTC)
    before = datetime(2034, 3, 31, 18, 29, 59, tzinfo=UTC)
    assert policy.cutoff("invoices", before) == datetime(2025, 3, 31, 18, 30, tzinfo=UTC)
    assert policy.cutoff("payments", as_of) == datetime(2027, 3, 31, 18, 30, tzinfo=UTC)
    assert policy.cutoff("webhook_bodies", as_of) == datetime(2033, 12, 31, 18, 30, tzinfo=UTC)
    # 29 February three years back is 28 February.
    leap = datetime(2028, 2, 29, 12, tzinfo=UTC)
    assert policy.cutoff("analytics", leap) == datetime(2025, 2, 28, 12, tzinfo=UTC)
    assert set(policy.cutoffs(as_of)) == set(CLASSES)
    with pytest.raises(ValueError, match="as_of"):
        policy.cutoff("payments", datetime(2034, 4, 1))
