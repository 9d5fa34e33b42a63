"""The gateway port: idempotency keys and result types."""

import pytest

from billing_jobs.payments.gateway import PaymentResult, PaymentStatus, idempotency_key_for


def test_idempotency_key_is_deterministic_per_invoice_attempt():
    assert idempotency_key_for("in_1", 1) == idempotency_key_for("in_1", 1)
    assert idempotency_key_for("in_1", 1) != idempotency_key_for("in_1", 2)
    assert idempotency_key_for("in_1", 1) != idempotency_key_for("in_2", 1)


@pytest.mark.parametrize(("invoice", "attempt"), [("", 1), ("in_1", 0), ("in_1", -3)])
def test_idempotency_key_rejects_bad_input(invoice, attempt):
    with pytest.raises(ValueError):
        idempotency_key_for(invoice, attempt)


def test_payment_result_flags():
    ok = PaymentResult(PaymentStatus.SUCCEEDED, "pi_1", 100, "INR")
    bad = PaymentResult(PaymentStatus.FAILED, "pi_2", 100, "INR", decline_code="lost_card")
    assert ok.succeeded and not ok.declined
    assert bad.declined and not bad.succeeded
