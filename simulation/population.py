"""Who the demo world's customers are and what they will do: segments, states, payment methods,
plans, and a life story (expansions, contractions, pauses, churn preceded by signals)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone

from billing_jobs.tax.gst import gstin_check_char
from simulation.calendar_in import signup_weight

IST = timezone(timedelta(hours=5, minutes=30))

SEGMENTS = (("smb", 0.70), ("mid_market", 0.24), ("enterprise", 0.06))
STATES = (("29", 22), ("27", 20), ("07", 12), ("33", 9), ("36", 8), ("24", 6), ("06", 5),
          ("09", 5), ("19", 4), ("32", 3), ("08", 3), ("03", 2), ("23", 1))  # fmt: skip
# Payment-method mix by segment: small businesses pay by UPI, enterprises by net banking.
METHODS = {
    "smb": (("upi", 45), ("card", 35), ("wallet", 12), ("netbanking", 8)),
    "mid_market": (("card", 45), ("netbanking", 30), ("upi", 20), ("wallet", 5)),
    "enterprise": (("netbanking", 60), ("card", 35), ("upi", 5)),
}
ISSUERS = {
    "card": (("hdfc", 30), ("icici", 25), ("sbi", 20), ("axis", 15), ("kotak", 10)),
    "upi": (("ybl", 35), ("okhdfcbank", 25), ("okicici", 20), ("oksbi", 20)),
    "netbanking": (("HDFC", 35), ("ICIC", 25), ("SBIN", 25), ("UTIB", 15)),
    "wallet": (("paytm", 45), ("phonepe", 40), ("amazonpay", 15)),
}
BRANDS = (("visa", 50), ("mastercard", 35), ("rupay", 15))
PLANS = {
    "smb": (("starter-monthly", 50), ("starter-yearly", 15), ("growth-monthly", 30),
            ("growth-yearly", 5)),
    "mid_market": (("growth-monthly", 45), ("growth-yearly", 20), ("scale-monthly", 25),
                   ("scale-quarterly", 10)),
    "enterprise": (("scale-monthly", 30), ("scale-quarterly", 20), ("scale-yearly", 50)),
}  # fmt: skip
SEATS = {"smb": (1, 5), "mid_market": (5, 30), "enterprise": (20, 120)}
MONTHLY_CHURN = {"smb": 0.030, "mid_market": 0.014, "enterprise": 0.006}
# Upgrade / downgrade ladders keep the billing interval (the billing code refuses to change it).
LADDER = {
    "month": ("starter-monthly", "growth-monthly", "scale-monthly"),
    "year": ("starter-yearly", "growth-yearly", "scale-yearly"),
    "quarter": ("scale-quarterly",),
}
INTERVAL = {p: i for i, plans in LADDER.items() for p in plans}
MONTHLY_PRICE_INR = {"starter-monthly": 999, "starter-yearly": 833, "growth-monthly": 2499,
                     "growth-yearly": 2083, "scale-monthly": 9999, "scale-quarterly": 9500,
                     "scale-yearly": 8333}  # fmt: skip
SCALE_INCLUDED_SEATS = 10
NAME_A = ("Aarav", "Bharat", "Chetan", "Deccan", "Ekam", "Ganga", "Himalaya", "Indus", "Jaipur",
          "Kaveri", "Lotus", "Malabar", "Narmada", "Orchid", "Pune", "Quill", "Rann", "Sahyadri",
          "Tapti", "Udaan", "Vindhya", "Yamuna", "Zenith")  # fmt: skip
NAME_B = ("Analytics", "Logistics", "Retail", "Foods", "Fintech", "Health", "Textiles", "Labs",
          "Motors", "Studios", "Agritech", "Learning", "Travels", "Infra", "Pharma")  # fmt: skip


def pick(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([n for n, _ in weighted], [w for _, w in weighted])[0]


def make_gstin(rng: random.Random, state: str) -> str:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    pan = "".join(rng.choice(letters) for _ in range(3)) + "C" + rng.choice(letters)
    pan += f"{rng.randrange(10_000):04d}" + rng.choice(letters)
    first14 = f"{state}{pan}1Z"
    return first14 + gstin_check_char(first14)


@dataclass
class Planned:
    """A customer action the story schedules; `signal` marks behaviour that precedes churn."""

    at: datetime
    kind: str  # add_seats remove_seats upgrade downgrade pause resume cancel revoke_method update_method
    args: dict = field(default_factory=dict)
    signal: bool = False


@dataclass
class Profile:
    idx: int
    name: str
    segment: str
    state_code: str
    tax_status: str
    gstin: str | None
    currency: str
    method: str
    issuer: str
    token: str
    mandate: bool
    plan: str
    seats: int
    coupon: str | None
    signup_at: datetime
    intended_churn_at: datetime | None = None
    story: list[Planned] = field(default_factory=list)


def card_token(rng: random.Random, issuer: str, exp: date) -> str:
    return f"tok_card_{issuer}_{pick(rng, BRANDS)}_{rng.randrange(10_000):04d}_{exp.month:02d}_{exp.year}"


def _token(rng: random.Random, method: str, issuer: str, mandate: bool, exp: date) -> str:
    if method == "card":
        tok = card_token(rng, issuer, exp)
        return tok.replace("tok_card_", "tok_card_mandate_") if mandate else tok
    if method == "upi":
        return f"tok_upi_mandate_{issuer}" if mandate else f"tok_upi_{issuer}"
    return f"tok_{method}_{issuer}"


def signup_days(rng: random.Random, n: int, start: date, days: int) -> list[date]:
    """Sign-up dates: a small migrated book in week one, then growth with seasonality/holidays."""
    initial = max(1, n // 10) if n >= 10 else n
    out = [start + timedelta(days=rng.randrange(min(7, days))) for _ in range(initial)]
    weights = [signup_weight(start + timedelta(d)) * (1 + 1.5 * d / days) for d in range(days)]
    picks = rng.choices(range(days), weights, k=n - initial)
    out += [start + timedelta(days=d) for d in picks]
    return sorted(out)


def at_ist(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute, second), IST).astimezone(UTC)


def _business_time(rng: random.Random, day: date) -> datetime:
    return at_ist(day, 9) + timedelta(seconds=rng.randrange(11 * 3600))


def make_profile(rng: random.Random, idx: int, day: date, end: datetime) -> Profile:
    segment = pick(rng, SEGMENTS)
    export = segment != "smb" and rng.random() < 0.04
    sez = not export and segment != "smb" and rng.random() < 0.03
    state = "96" if export else pick(rng, STATES)
    has_gstin = sez or (not export and (segment != "smb" or rng.random() < 0.6))
    method = "card" if export else pick(rng, METHODS[segment])
    issuer = pick(rng, ISSUERS[method])
    plan = pick(rng, PLANS[segment])
    lo, hi = SEATS[segment]
    seats = 1 if plan.startswith("starter") else rng.randint(lo, hi)
    if plan.startswith("scale"):
        seats = max(seats, SCALE_INCLUDED_SEATS)
    signup_at = _business_time(rng, day)
    monthly_inr = MONTHLY_PRICE_INR[plan] * (seats if plan.startswith("growth") else 1)
    # Mandates (UPI AutoPay, card e-mandate) only where debits stay under the ₹15,000 limit.
    mandate = (
        not export and method in ("upi", "card") and monthly_inr < 12_000 and rng.random() < 0.7
    )
    churn_days = rng.expovariate(MONTHLY_CHURN[segment] / 30.44)
    intended = signup_at + timedelta(days=max(45.0, churn_days))
    intended_churn = intended if intended < end else None
    exp_year = signup_at.year + rng.randint(0, 4)
    exp = date(exp_year, rng.randint(1, 12), 1)
    if exp <= signup_at.date() + timedelta(days=62):
        exp = date(exp.year + 1, exp.month, 1)
    if intended_churn is not None and method == "card" and rng.random() < 0.35:
        # A leaving customer lets the card lapse and does not replace it.
        before = intended_churn - timedelta(days=rng.randint(20, 50))
        if before > signup_at + timedelta(days=62):
            exp = date(before.year, before.month, 1)
    coupon = None
    if rng.random() < 0.08:
        coupon = "LAUNCH20"
    elif segment == "smb" and rng.random() < 0.05:
        coupon = "STARTUPINDIA"
    p = Profile(
        idx=idx,
        name=f"{rng.choice(NAME_A)} {rng.choice(NAME_B)} {idx} Pvt Ltd",
        segment=segment,
        state_code=state,
        tax_status="export" if export else ("sez" if sez else "regular"),
        gstin=make_gstin(rng, state) if has_gstin else None,
        currency="USD" if export else "INR",
        method=method,
        issuer=issuer,
        token=_token(rng, method, issuer, mandate, exp),
        mandate=mandate,
        plan=plan,
        seats=seats,
        coupon=coupon,
        signup_at=signup_at,
        intended_churn_at=intended_churn,
    )
    p.story = _story(rng, p, end, exp)
    return p


def _at(rng: random.Random, t: datetime) -> datetime:
    return _business_time(rng, t.astimezone(IST).date())


def _poisson_times(rng: random.Random, per_year: float, a: datetime, b: datetime) -> list[datetime]:
    out, t = [], a
    while per_year > 0:
        t += timedelta(days=rng.expovariate(per_year / 365.25))
        if t >= b:
            return out
        out.append(_at(rng, t))
    return out


def _story(rng: random.Random, p: Profile, end: datetime, exp: date) -> list[Planned]:
    story: list[Planned] = []
    churn = p.intended_churn_at
    horizon = churn or end
    begin = p.signup_at + timedelta(days=20)
    per_seat = not p.plan.startswith("starter") and p.plan != "scale-quarterly"
    # Ordinary life: expansion is common, contraction and pauses are rare (noise for the model).
    if per_seat:
        for t in _poisson_times(rng, 0.45, begin, horizon):
            story.append(Planned(t, "add_seats", {"n": rng.randint(1, 3)}))
        for t in _poisson_times(rng, 0.07, begin, horizon):
            story.append(Planned(t, "remove_seats", {"n": 1}))
    for t in _poisson_times(rng, 0.10, begin, horizon):
        story.append(Planned(t, "upgrade", {}))
    for t in _poisson_times(rng, 0.04, begin, horizon):
        story.append(Planned(t, "downgrade", {"when": "period_end"}))
    for t in _poisson_times(rng, 0.04, begin, horizon):
        story.append(Planned(t, "pause", {}))
        story.append(Planned(_at(rng, t + timedelta(days=rng.randint(14, 45))), "resume", {}))
    if p.method == "card" and churn is None:
        lapse = datetime(exp.year, exp.month, 1, tzinfo=IST)
        if lapse < end:
            # Most payers replace an expiring card, some only after a decline.
            fix = lapse + timedelta(days=rng.randint(-20, 12))
            story.append(Planned(_at(rng, fix), "update_method", {}))
    if churn is not None:
        lead = timedelta(days=rng.randint(20, 80))
        s0 = max(p.signup_at + timedelta(days=15), churn - lead)
        span = max(1.0, (churn - s0).total_seconds() / 86400)

        def when(frac: float) -> datetime:
            return _at(rng, s0 + timedelta(days=span * frac))

        if per_seat and rng.random() < 0.6:
            story.append(Planned(when(0.05), "remove_seats", {"n": rng.randint(1, 4)}, True))
        if p.plan.split("-")[0] in ("growth", "scale") and rng.random() < 0.4:
            story.append(Planned(when(0.3), "downgrade", {"when": "now"}, True))
        if p.method != "card" and rng.random() < 0.3:
            story.append(Planned(when(0.45), "revoke_method", {}, True))
        paused = rng.random() < 0.25
        if paused:
            story.append(Planned(when(0.6), "pause", {}, True))
        cancel_kind = "cancel_period_end" if (not paused and rng.random() < 0.4) else "cancel"
        cancel_at = _at(rng, churn)
        story = [e for e in story if e.at < cancel_at]
        story.append(Planned(cancel_at, cancel_kind, {}))
        # The truth is the moment the customer cancels (right-censored past the horizon).
        p.intended_churn_at = cancel_at if cancel_at < end else None
    story.sort(key=lambda e: e.at)
    return [e for e in story if p.signup_at < e.at < end]
