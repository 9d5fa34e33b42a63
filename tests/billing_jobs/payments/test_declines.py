"""Every decline code in the table is classified, and the classification drives retryability."""

import pytest

from billing_jobs.payments.declines import (
    DECLINE_TABLE,
    DeclineClass,
    UnknownDeclineCode,
    classify,
    is_retryable,
    lookup,
)

# The expected class of every code, written out independently of the module's table.
HARD = {
    "lost_card", "stolen_card", "pickup_card", "restricted_card", "fraudulent", "merchant_blacklist",
    "invalid_account", "new_account_information_available", "revocation_of_authorization",
    "revocation_of_all_authorizations", "stop_payment_order", "security_violation",
    "card_not_supported", "currency_not_supported", "mandate_revoked", "mandate_expired",
    "mandate_cancelled", "invalid_vpa", "account_closed", "account_frozen", "card_lost_or_stolen",
    "card_blocked", "suspected_fraud", "international_transaction_not_allowed",
}  # fmt: skip
ACTION = {
    "expired_card", "incorrect_cvc", "invalid_cvc", "incorrect_number", "invalid_expiry_year",
    "incorrect_pin", "authentication_required", "offline_pin_required",
    "online_or_offline_pin_required", "mandate_paused", "mandate_amount_exceeded",
    "incorrect_upi_pin", "card_expired", "authentication_failed",
}  # fmt: skip


@pytest.mark.parametrize(("gateway", "code"), sorted(DECLINE_TABLE))
def test_every_code_is_classified(gateway, code):
    expected = (
        DeclineClass.HARD
        if code in HARD
        else DeclineClass.ACTION
        if code in ACTION
        else DeclineClass.SOFT
    )
    assert classify(gateway, code) is expected
    assert lookup(gateway, code).meaning
    assert is_retryable(gateway, code) is (expected is DeclineClass.SOFT)


@pytest.mark.parametrize(
    "code",
    [
        "insufficient_funds", "do_not_honor", "generic_decline", "lost_card", "stolen_card",
        "expired_card", "incorrect_cvc", "processing_error", "issuer_not_available",
        "try_again_later", "card_velocity_exceeded", "fraudulent", "pickup_card",
        "restricted_card", "invalid_account", "authentication_required",
    ],
)  # fmt: skip
def test_required_stripe_codes_present(code):
    assert ("stripe", code) in DECLINE_TABLE


@pytest.mark.parametrize("code", ["insufficient_funds", "payment_declined", "mandate_revoked"])
def test_required_razorpay_codes_present(code):
    assert ("razorpay", code) in DECLINE_TABLE


def test_case_insensitive_and_unknown():
    assert classify("Stripe", "LOST_CARD") is DeclineClass.HARD
    assert classify("stripe", "some_new_code") is DeclineClass.SOFT
    assert classify("stripe", None) is DeclineClass.SOFT
    with pytest.raises(UnknownDeclineCode):
        lookup("stripe", "some_new_code")
