"""Decline codes per gateway, classified hard (never retry), soft (retry later) or action (customer must act).

Sources: Stripe's decline-code reference (`decline_code` on card errors) and Razorpay's
`error_reason` values (cards, net banking, UPI and recurring mandates). Retry policies read this.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class DeclineClass(StrEnum):
    HARD = "hard"  # the instrument will never work: lost/stolen, closed, revoked; do not retry
    SOFT = "soft"  # may work later: funds, issuer down, velocity, timeouts; retry on schedule
    ACTION = "action"  # the customer must do something (authenticate, update); no silent retry


@dataclass(frozen=True)
class DeclineCode:
    gateway: str
    code: str
    decline_class: DeclineClass
    meaning: str


class UnknownDeclineCode(KeyError):
    """A (gateway, code) pair not in the table, raised only by strict lookups."""


H, S, A = DeclineClass.HARD, DeclineClass.SOFT, DeclineClass.ACTION

_STRIPE: tuple[tuple[str, DeclineClass, str], ...] = (
    ("insufficient_funds", S, "not enough balance or credit; retry near payday"),
    ("do_not_honor", S, "issuer declined without a reason; often transient"),
    ("generic_decline", S, "issuer declined without a reason"),
    ("card_declined", S, "declined, no detail given"),
    ("processing_error", S, "error while processing the card"),
    ("issuer_not_available", S, "issuer could not be reached"),
    ("try_again_later", S, "issuer asks to retry later"),
    ("card_velocity_exceeded", S, "balance, credit or velocity limit reached"),
    ("withdrawal_count_limit_exceeded", S, "withdrawal count limit reached"),
    ("approve_with_id", S, "payment cannot be authorised now"),
    ("reenter_transaction", S, "issuer could not process; retry"),
    ("call_issuer", S, "unknown reason; customer should call the issuer"),
    ("no_action_taken", S, "unknown reason"),
    ("not_permitted", S, "payment not permitted right now"),
    ("service_not_allowed", S, "issuer refused this kind of transaction"),
    ("transaction_not_allowed", S, "unknown reason"),
    ("duplicate_transaction", S, "identical transaction just submitted"),
    ("lost_card", H, "card reported lost"),
    ("stolen_card", H, "card reported stolen"),
    ("pickup_card", H, "card must be retained: lost/stolen"),
    ("restricted_card", H, "card cannot be used (lost/stolen restriction)"),
    ("fraudulent", H, "suspected fraud"),
    ("merchant_blacklist", H, "matches the merchant's block list"),
    ("invalid_account", H, "card or account is invalid/closed"),
    ("new_account_information_available", H, "account details changed; need new details"),
    ("revocation_of_authorization", H, "customer revoked the authorisation"),
    ("revocation_of_all_authorizations", H, "customer revoked all authorisations"),
    ("stop_payment_order", H, "customer stopped this payment"),
    ("security_violation", H, "issuer security violation"),
    ("card_not_supported", H, "card does not support this purchase"),
    ("currency_not_supported", H, "card does not support the currency"),
    ("expired_card", A, "card expired; customer must update it"),
    ("incorrect_cvc", A, "CVC wrong; customer must re-enter"),
    ("invalid_cvc", A, "CVC invalid; customer must re-enter"),
    ("incorrect_number", A, "card number wrong; customer must re-enter"),
    ("invalid_expiry_year", A, "expiry year invalid; customer must update"),
    ("incorrect_pin", A, "PIN wrong"),
    ("authentication_required", A, "issuer requires 3-D Secure; customer must authenticate"),
    ("offline_pin_required", A, "card needs a PIN"),
    ("online_or_offline_pin_required", A, "card needs a PIN"),
    ("gateway_timeout", S, "no answer from the gateway (paysight pseudo-code)"),
)

_RAZORPAY: tuple[tuple[str, DeclineClass, str], ...] = (
    ("insufficient_funds", S, "account balance too low"),
    ("payment_declined", S, "bank declined without a reason"),
    ("bank_technical_error", S, "bank systems failed"),
    ("gateway_technical_error", S, "gateway-side technical failure"),
    ("server_error", S, "Razorpay server error"),
    ("payment_timed_out", S, "customer or bank did not respond in time"),
    ("payment_pending", S, "outcome not final yet"),
    ("transaction_limit_exceeded", S, "daily/transaction limit reached"),
    ("debit_instrument_blocked", S, "instrument temporarily blocked"),
    ("payment_collect_request_expired", S, "UPI collect request expired unapproved"),
    ("upi_app_not_responding", S, "UPI app or PSP not responding"),
    ("mandate_debit_failed", S, "mandate debit failed at the bank"),
    ("card_declined", S, "card declined without a reason"),
    ("payment_cancelled", S, "customer cancelled this attempt"),
    ("mandate_revoked", H, "customer revoked the UPI AutoPay / e-mandate"),
    ("mandate_paused", A, "customer paused the mandate; needs resumption"),
    ("mandate_expired", H, "mandate validity ended"),
    ("mandate_cancelled", H, "mandate cancelled"),
    ("mandate_amount_exceeded", A, "debit above the mandate's maximum amount"),
    ("incorrect_upi_pin", A, "UPI PIN wrong (only the customer can fix)"),
    ("invalid_vpa", H, "UPI VPA does not exist"),
    ("account_closed", H, "bank account closed"),
    ("account_frozen", H, "bank account frozen"),
    ("invalid_account", H, "bank account invalid"),
    ("card_expired", A, "card expired; customer must update it"),
    ("card_lost_or_stolen", H, "card reported lost or stolen"),
    ("card_blocked", H, "card blocked by the issuer"),
    ("suspected_fraud", H, "flagged as fraud"),
    ("international_transaction_not_allowed", H, "card not enabled for international use"),
    ("authentication_failed", A, "customer failed authentication"),
    ("authentication_required", A, "debit above the AFA limit; needs customer authentication"),
    ("gateway_timeout", S, "no answer from the gateway (paysight pseudo-code)"),
)

# The simulated gateway speaks Stripe's codes plus Razorpay's UPI/mandate reasons.
DECLINE_TABLE: dict[tuple[str, str], DeclineCode] = {
    (gw, code): DeclineCode(gw, code, cls, meaning)
    for gw, rows in (("stripe", _STRIPE), ("razorpay", _RAZORPAY))
    for code, cls, meaning in rows
}
for (_gw, _code), _row in list(DECLINE_TABLE.items()):
    DECLINE_TABLE.setdefault(
        ("simulated", _code), DeclineCode("simulated", _code, _row.decline_class, _row.meaning)
    )


def lookup(gateway: str, code: str) -> DeclineCode:
    """The table row for (gateway, code); raises `UnknownDeclineCode` when absent."""
    try:
        return DECLINE_TABLE[(gateway.lower(), code.lower())]
    except KeyError:
        raise UnknownDeclineCode(f"decline code {code!r} is not in the {gateway!r} table") from None


def classify(gateway: str, code: str | None) -> DeclineClass:
    """Hard, soft or action. Unknown codes are soft: gateways add codes, and refusing to ever
    retry a merely unfamiliar decline loses more revenue than one extra bounded attempt."""
    if not code:
        return DeclineClass.SOFT
    row = DECLINE_TABLE.get((gateway.lower(), code.lower()))
    return row.decline_class if row else DeclineClass.SOFT


def is_retryable(gateway: str, code: str | None) -> bool:
    """Only soft declines are retried automatically."""
    return classify(gateway, code) is DeclineClass.SOFT
