"""Payment-method validation: tokens only, PAN/CVV/PIN rejected, currencies, limits, expiry, refunds."""

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_jobs.payments.method_rules import (
    AmountOverLimit,
    CurrencyNotAllowed,
    MethodKind,
    PaymentMethodError,
    RefundExceedsCaptured,
    SensitiveDataRejected,
    UnknownPaymentMethod,
    check_charge,
    check_refund,
    expiring_cards,
    looks_like_pan,
    validate_payment_method,
)

TODAY = date(2026, 6, 15)
CARD = {
    "kind": "card",
    "token": "pm_123",
    "last4": "4242",
    "brand": "Visa",
    "exp_month": 12,
    "exp_year": 2027,
}


def test_card_stores_only_token_and_display_fields():
    m = validate_payment_method(CARD, TODAY)
    assert (m.kind, m.token, m.last4, m.brand, m.exp_year) == (
        MethodKind.CARD,
        "pm_123",
        "4242",
        "visa",
        2027,
    )


@pytest.mark.parametrize(
    "extra",
    [
        {"number": "4242424242424242"},
        {"cvv": "123"},
        {"CVC": "123"},
        {"upi_pin": "1234"},
        {"token": "4242 4242 4242 4242"},
        {"issuer": "card 5555-5555-5555-4444 hdfc"},
        {"last4": 4111111111111111},
    ],
)
def test_sensitive_data_rejected_without_echo(extra):
    with pytest.raises(SensitiveDataRejected) as e:
        validate_payment_method({**CARD, **extra}, TODAY)
    assert "4242424242424242" not in str(e.value) and "123" not in str(e.value).replace(
        "pm_123", ""
    )


def test_pan_detection():
    assert looks_like_pan("4111 1111 1111 1111")
    assert not looks_like_pan("4111 1111 1111 1112")  # fails Luhn
    assert not looks_like_pan("order 12345")
    assert not looks_like_pan(True)


@given(st.integers(10**12, 10**19 - 1))
def test_pan_detection_agrees_with_luhn(n):
    digits = str(n)
    total = sum(
        (int(c) * 2 - 9 if int(c) * 2 > 9 else int(c) * 2) if i % 2 else int(c)
        for i, c in enumerate(reversed(digits))
    )
    assert looks_like_pan(digits) is (total % 10 == 0)


@pytest.mark.parametrize("vpa", ["asha@okhdfcbank", "ravi.k-99@ybl", "a1@paytm"])
def test_good_vpas(vpa):
    assert validate_payment_method({"kind": "upi", "token": "tok_1", "vpa": vpa}, TODAY).vpa == vpa


@pytest.mark.parametrize(
    "vpa", ["asha", "@ybl", "asha@", "as ha@ybl", "asha@@ybl", "a@1bank", None, 42]
)
def test_bad_vpas(vpa):
    with pytest.raises(PaymentMethodError, match="name@handle"):
        validate_payment_method({"kind": "upi", "token": "tok_1", "vpa": vpa}, TODAY)


@pytest.mark.parametrize(
    ("data", "err", "match"),
    [
        ({"kind": "cheque", "token": "t_1"}, UnknownPaymentMethod, "cheque"),
        ({"kind": "upi", "token": "t_1", "vpa": "asha@ybl", "currency": "USD"}, CurrencyNotAllowed, "INR"),
        ({"kind": "netbanking", "token": "t_1", "currency": "EUR"}, CurrencyNotAllowed, "INR"),
        ({**CARD, "exp_year": 2026, "exp_month": 5}, PaymentMethodError, "expired"),
        ({**CARD, "exp_month": 13}, PaymentMethodError, "1-12"),
        ({**CARD, "last4": "42"}, PaymentMethodError, "last4"),
        ({"kind": "card", "token": "pm_1", "last4": "4242"}, PaymentMethodError, "exp_month"),
        ({"kind": "wallet"}, PaymentMethodError, "token"),
        ({"kind": "wallet", "token": "t_1", "colour": "red"}, PaymentMethodError, "unexpected"),
        ({"kind": "card", **{k: v for k, v in CARD.items() if k != "kind"}, "max_amount_minor": 5}, PaymentMethodError, "mandates"),
    ],
)  # fmt: skip
def test_clear_errors(data, err, match):
    with pytest.raises(err, match=match):
        validate_payment_method(data, TODAY)


def test_card_in_usd_is_fine_and_two_digit_year():
    m = validate_payment_method({**CARD, "currency": "USD", "exp_year": 28}, TODAY)
    assert m.exp_year == 2028
    assert check_charge(m, 10_000, "USD", TODAY).requires_authentication is False


def test_limits_and_mandate_authentication():
    upi = validate_payment_method({"kind": "upi", "token": "tok_u", "vpa": "asha@ybl"}, TODAY)
    assert not check_charge(upi, 10_000_000, "INR", TODAY).requires_authentication
    with pytest.raises(AmountOverLimit, match="10000000"):
        check_charge(upi, 10_000_001, "INR", TODAY)
    with pytest.raises(CurrencyNotAllowed):
        check_charge(upi, 100, "USD", TODAY)
    mandate = validate_payment_method(
        {"kind": "upi_mandate", "token": "tok_m", "vpa": "asha@ybl", "max_amount_minor": 2_000_000},
        TODAY,
    )
    assert not check_charge(mandate, 1_500_000, "INR", TODAY).requires_authentication
    assert check_charge(mandate, 1_500_001, "INR", TODAY).requires_authentication
    with pytest.raises(AmountOverLimit, match="registered"):
        check_charge(mandate, 2_000_001, "INR", TODAY)
    card = validate_payment_method(CARD, TODAY)
    with pytest.raises(PaymentMethodError, match="expired"):
        check_charge(card, 100, "INR", date(2028, 1, 1))
    with pytest.raises(PaymentMethodError, match="positive"):
        check_charge(card, 0, "INR", TODAY)


def test_refund_bounds():
    assert check_refund(10_000, 3_000, 7_000) == 0
    with pytest.raises(RefundExceedsCaptured, match="7000 still refundable"):
        check_refund(10_000, 3_000, 7_001)
    with pytest.raises(PaymentMethodError):
        check_refund(10_000, 0, 0)


def test_expiring_cards():
    def mk(m, y):
        return validate_payment_method({**CARD, "exp_month": m, "exp_year": y}, date(2020, 1, 1))

    cards = [mk(6, 2026), mk(7, 2026), mk(8, 2026), mk(1, 2030)]
    soon = expiring_cards(cards, TODAY, within_months=1)
    assert [(c.exp_month, c.exp_year) for c in soon] == [(6, 2026), (7, 2026)]
    assert (
        expiring_cards([validate_payment_method({"kind": "wallet", "token": "w_1"}, TODAY)], TODAY)
        == []
    )
