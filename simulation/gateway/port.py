"""The simulated gateway as a `Gateway` port implementation: deterministic, SQLite-backed, time-driven.

Outcomes are deterministic functions of (seed, idempotency key, time, history); UPI payments stay
pending and resolve later through events; successes get fees + 18% GST on fees and settle T+2
working days in payout batches; some card payments are disputed weeks later; webhooks are signed
with the Stripe scheme. Timeouts can be injected before or after the charge is recorded.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from billing_jobs.money import normalize_currency
from billing_jobs.payments.gateway import (
    IDEMPOTENCY_METADATA_KEY,
    Customer,
    GatewayError,
    GatewayTimeout,
    NotFound,
    PaymentMethod,
    PaymentResult,
    PaymentStatus,
    Refund,
)
from simulation.gateway import behaviour as world
from simulation.gateway.feeds import SimulatedFeeds
from simulation.gateway.store import SimStore, _dt, _ts

TimeoutWhen = Literal["before", "after"] | None
# (idempotency_key) -> "before" (request lost, nothing charged), "after" (charged, answer lost), None
TimeoutInjector = Callable[[str], TimeoutWhen]

FEE_BPS = {"card": 200, "upi": 0, "netbanking": 190, "wallet": 190}
FEE_GST_PERCENT = 18
DISPUTE_FEE_MINOR = 1_500  # ₹15 network dispute fee, in paise
DISPUTE_RATE = 0.006
DISPUTE_REASONS = (("fraudulent", 0.4), ("product_not_received", 0.25), ("duplicate", 0.15),
                   ("subscription_canceled", 0.2))  # fmt: skip
MANDATE_KINDS = {"upi_mandate": "upi", "card_mandate": "card"}
_NEVER = 1 << 62  # a timestamp after everything
_INSERT_PAYMENT = (
    "insert into sim_payments (id, customer_id, pm_token, method, issuer, amount_minor, currency,"
    " status, decline_code, idempotency_key, invoice_id, metadata, created_at, resolve_at,"
    " final_status, final_code) values (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


def _sid(prefix: str, *parts: object) -> str:
    return f"{prefix}_{hashlib.sha256('|'.join(map(str, parts)).encode()).hexdigest()[:24]}"


def fee_and_tax(amount_minor: int, method: str) -> tuple[int, int]:
    """Gateway fee (basis points, half-up) and 18% GST on the fee, in exact integers."""
    fee = (amount_minor * FEE_BPS[method] + 5_000) // 10_000
    return fee, (fee * FEE_GST_PERCENT + 50) // 100


def settlement_time(at: datetime) -> datetime:
    """T+2 working days (weekends skipped), settled at 11:00 UTC."""
    day = at.astimezone(UTC).date()
    added = 0
    while added < 2:
        day += timedelta(days=1)
        if day.weekday() < 5:
            added += 1
    return datetime(day.year, day.month, day.day, 11, 0, tzinfo=UTC)


def parse_token(token: str) -> dict:
    """Simulated tokens name the instrument, like Stripe's `tok_visa`:
    `tok_card_<issuer>_<brand>_<last4>_<mm>_<yyyy>`, `tok_upi_<handle>`, `tok_upi_mandate_<handle>`,
    `tok_card_mandate_<issuer>_<brand>_<last4>_<mm>_<yyyy>`, `tok_netbanking_<bank>`, `tok_wallet_<name>`
    (documented for operators, with the issuers, in docs/operations.md; keep the two in step)."""
    parts = token.split("_")
    if len(parts) < 3 or parts[0] != "tok":
        raise GatewayError(f"unknown simulated token {token!r}")
    kind, rest = parts[1], parts[2:]
    if kind in ("upi", "card") and rest and rest[0] == "mandate":
        kind, rest = f"{kind}_mandate", rest[1:]
    method = MANDATE_KINDS.get(kind, kind)
    if (
        method not in world.METHOD_ISSUERS
        or not rest
        or rest[0] not in world.METHOD_ISSUERS[method]
    ):
        raise GatewayError(f"unknown simulated token {token!r}: method or issuer not supported")
    out: dict = {"kind": kind, "method": method, "issuer": rest[0]}
    if method == "card":
        if len(rest) != 5 or not (rest[2].isdigit() and len(rest[2]) == 4):
            raise GatewayError(
                f"card token {token!r} must be tok_card_<issuer>_<brand>_<last4>_<mm>_<yyyy>"
            )
        out.update(brand=rest[1], last4=rest[2], exp_month=int(rest[3]), exp_year=int(rest[4]))
    return out


class SimulatedPort(SimulatedFeeds):
    """Mixin implementing the `Gateway` port for `SimulatedGateway`. Pass `now=` on every call,
    or give a `clock` callable; nothing here reads the system clock."""

    name = "simulated"
    seed: int

    def _init_port(
        self,
        state: str | Path = ":memory:",
        webhook_secret: str | None = None,
        clock: Callable[[], datetime] | None = None,
        timeouts: TimeoutInjector | None = None,
    ) -> None:
        self.store = SimStore(state)
        # No shipped default: a secret of this instance's own unless one is given (the
        # installation's, `paysight simulate`), so nothing public can sign its deliveries.
        self.webhook_secret = webhook_secret or "whsec_" + secrets.token_hex(24)
        self.clock = clock
        self.timeouts = timeouts
        # (transaction serial, earliest time anything is due): lets `_advance` skip its
        # queries while nothing can be due, within one long cached transaction.
        self._due: tuple[int, int] | None = None

    # -- plumbing ------------------------------------------------------------------------------
    def _now(self, now: datetime | None) -> datetime:
        if now is None:
            if self.clock is None:
                raise GatewayError("simulated gateway needs the time: pass now= or give it a clock")
            now = self.clock()
        _ts(now)
        return now

    def _event(
        self, c: sqlite3.Connection, type_: str, at: datetime, obj_id: str, data: dict
    ) -> None:
        eid = _sid("evt", self.seed, type_, obj_id, data.get("status"))
        c.execute(
            "insert or ignore into sim_events (id, type, created_at, object_id, data) values (?,?,?,?,?)",
            (eid, type_, _ts(at), obj_id, json.dumps(data, sort_keys=True)),
        )

    # -- customers and payment methods ---------------------------------------------------------
    def create_customer(
        self,
        *,
        email: str | None = None,
        name: str | None = None,
        metadata: Mapping[str, str] | None = None,
        now: datetime | None = None,
    ) -> Customer:
        at = self._now(now)
        with self.store.transaction() as c:
            n = c.execute("select count(*) from sim_customers").fetchone()[0]
            cid = _sid("cus", self.seed, "customer", n)
            meta = dict(metadata or {})
            c.execute(
                "insert into sim_customers values (?,?,?,?,?)",
                (cid, email, name, json.dumps(meta), _ts(at)),
            )
            self._event(c, "customer.created", at, cid, {"id": cid, "email": email})
        return Customer(cid, email, name, meta)

    def attach_payment_method(self, customer_id: str, token: str) -> PaymentMethod:
        """Turn a one-time `tok_...` into a reusable `pm_...` of this customer (as Stripe does)."""
        info = parse_token(token)
        pm_id = _sid("pm", self.seed, customer_id, token)
        with self.store.transaction() as c:
            if not c.execute("select 1 from sim_customers where id=?", (customer_id,)).fetchone():
                raise NotFound(f"no such customer {customer_id!r}")
            c.execute(
                "insert or replace into sim_payment_methods values (?,?,?,?,?,?,?,?,1)",
                (pm_id, customer_id, info["kind"], info["issuer"], info.get("brand"),
                 info.get("last4"), info.get("exp_month"), info.get("exp_year")),
            )  # fmt: skip
        return self._pm(self.store.one("select * from sim_payment_methods where token=?", pm_id))

    def detach_payment_method(self, token: str) -> None:
        with self.store.transaction() as c:
            cur = c.execute(
                "update sim_payment_methods set attached=0 where token=? and attached=1", (token,)
            )
            if cur.rowcount == 0:
                raise NotFound(f"payment method {token!r} is not attached")

    def list_payment_methods(self, customer_id: str) -> list[PaymentMethod]:
        rows = self.store.all(
            "select * from sim_payment_methods where customer_id=? and attached=1 order by token",
            customer_id,
        )
        return [self._pm(r) for r in rows]

    @staticmethod
    def _pm(r: sqlite3.Row) -> PaymentMethod:
        return PaymentMethod(
            token=r["token"], kind=r["kind"], customer_id=r["customer_id"], brand=r["brand"],
            last4=r["last4"], exp_month=r["exp_month"], exp_year=r["exp_year"], issuer=r["issuer"],
        )  # fmt: skip

    # -- charging ------------------------------------------------------------------------------
    def charge(
        self,
        customer_id: str,
        payment_method: str,
        amount_minor: int,
        currency: str,
        idempotency_key: str,
        *,
        off_session: bool = True,
        metadata: Mapping[str, str] | None = None,
        now: datetime | None = None,
    ) -> PaymentResult:
        at = self._now(now)
        currency = normalize_currency(currency)
        if not idempotency_key:
            raise GatewayError("an idempotency key is required")
        if amount_minor <= 0:
            raise GatewayError(f"amount_minor must be positive, got {amount_minor}")
        meta = {**(metadata or {}), IDEMPOTENCY_METADATA_KEY: idempotency_key}
        request_hash = hashlib.sha256(
            json.dumps(
                [customer_id, payment_method, amount_minor, currency, sorted(meta.items())]
            ).encode()
        ).hexdigest()
        injected = self.timeouts(idempotency_key) if self.timeouts else None
        if injected == "before":
            raise GatewayTimeout(
                f"simulated timeout before {idempotency_key!r} reached the gateway"
            )
        with self.store.transaction() as c:
            self._advance(c, at)
            prior = c.execute(
                "select * from sim_idempotency where key=?", (idempotency_key,)
            ).fetchone()
            if prior is not None:
                if prior["request_hash"] != request_hash:
                    raise GatewayError(
                        f"idempotency key {idempotency_key!r} was used with different parameters",
                        code="idempotency_key_in_use",
                    )
                result = self._result(
                    c.execute(
                        "select * from sim_payments where id=?", (prior["payment_id"],)
                    ).fetchone()
                )
            else:
                result = self._new_payment(c, customer_id, payment_method, amount_minor, currency,
                                           idempotency_key, meta, at, request_hash)  # fmt: skip
        if injected == "after":
            raise GatewayTimeout(f"simulated timeout after {idempotency_key!r} was charged")
        return result

    def _new_payment(
        self,
        c: sqlite3.Connection,
        customer_id: str,
        token: str,
        amount: int,
        currency: str,
        key: str,
        meta: dict,
        at: datetime,
        request_hash: str,
    ) -> PaymentResult:
        pm = c.execute(
            "select * from sim_payment_methods where token=? and customer_id=? and attached=1",
            (token, customer_id),
        ).fetchone()
        if pm is None:
            raise GatewayError(
                f"payment method {token!r} is not attached to {customer_id!r}",
                code="resource_missing",
            )
        kind, issuer = pm["kind"], pm["issuer"]
        method = MANDATE_KINDS.get(kind, kind)
        invoice_id = meta.get("invoice_id")
        status, code = self._decide(c, customer_id, method, issuer, pm, invoice_id, key, amount, at)
        pay_id = _sid("pi", self.seed, key)
        resolve_at = final_status = final_code = None
        if method == "upi" and status != PaymentStatus.REQUIRES_ACTION.value:
            # UPI collect/AutoPay: the bank answers minutes to a day and a half later.
            delay = timedelta(minutes=5 + int(world.uniform(self.seed, "upi-delay", key) * 36 * 60))
            resolve_at, final_status, final_code = _ts(at + delay), status, code
            status, code = PaymentStatus.PENDING.value, None
        row = {
            "id": pay_id, "customer_id": customer_id, "pm_token": token, "method": method,
            "issuer": issuer, "amount_minor": amount, "currency": currency, "status": status,
            "decline_code": code, "idempotency_key": key, "invoice_id": invoice_id,
            "metadata": json.dumps(meta, sort_keys=True), "created_at": _ts(at),
            "resolve_at": resolve_at, "final_status": final_status, "final_code": final_code,
        }  # fmt: skip
        c.execute(_INSERT_PAYMENT, tuple(row.values()))
        c.execute("insert into sim_idempotency values (?,?,?)", (key, request_hash, pay_id))
        if resolve_at is not None:
            self._lower_due(resolve_at)
        # The row just written, as `select *` would return it (no re-read).
        self._settle_outcome(c, pay_id, at, row)
        return self._result(row)  # type: ignore[arg-type]

    def _decide(
        self, c: sqlite3.Connection, customer_id: str, method: str, issuer: str, pm: sqlite3.Row,
        invoice_id: str | None, key: str, amount: int, at: datetime,
    ) -> tuple[str, str | None]:  # fmt: skip
        if (
            method == "card"
            and pm["exp_year"] is not None
            and (pm["exp_year"], pm["exp_month"]) < (at.year, at.month)
        ):
            return PaymentStatus.FAILED.value, "expired_card"
        if pm["kind"] in MANDATE_KINDS and amount > 1_500_000:
            return PaymentStatus.REQUIRES_ACTION.value, "authentication_required"
        u = world.uniform(self.seed, "outcome", key)
        last_fail = None
        if invoice_id:
            last_fail = c.execute(
                "select decline_code, created_at, (select count(*) from sim_payments q where q.invoice_id=p.invoice_id)"
                " from sim_payments p where invoice_id=? and status='failed' order by created_at desc limit 1",
                (invoice_id,),
            ).fetchone()
        if last_fail is None:
            if not world.first_attempt_fails(issuer, at, u):
                return PaymentStatus.SUCCEEDED.value, None
            return PaymentStatus.FAILED.value, world.decline_code(
                method, issuer, world.uniform(self.seed, "code", key)
            )
        prev_code, prev_at, n_prev = last_fail
        hours = (_ts(at) - prev_at) / 3600
        p = world.retry_success_probability(
            prev_code, hours, at, n_prev + 1, world.resilience(self.seed, customer_id)
        )
        if u < p:
            return PaymentStatus.SUCCEEDED.value, None
        # A retry usually fails the same way; sometimes the bank gives a different reason.
        v = world.uniform(self.seed, "code", key)
        code = prev_code if v < 0.75 else world.decline_code(method, issuer, (v - 0.75) / 0.25)
        return PaymentStatus.FAILED.value, code

    def _settle_outcome(
        self, c: sqlite3.Connection, pay_id: str, at: datetime, row: Mapping | None = None
    ) -> None:
        """Side effects of a payment reaching its current status: event, fee txn, dispute draw.
        `row` is the payment as stored, when the caller has it."""
        p = row if row is not None else c.execute(
            "select * from sim_payments where id=?", (pay_id,)
        ).fetchone()  # fmt: skip
        status = p["status"]
        type_ = {
            "succeeded": "payment_intent.succeeded",
            "failed": "payment_intent.payment_failed",
            "pending": "payment_intent.processing",
            "requires_action": "payment_intent.requires_action",
        }[status]
        self._event(c, type_, at, pay_id, self._payload(p))
        if status != "succeeded":
            return
        fee, tax = fee_and_tax(p["amount_minor"], p["method"])
        available = _ts(settlement_time(at))
        c.execute(
            "insert or ignore into sim_balance_txns values (?,?,?,?,?,?,?,?,?,?,null)",
            (_sid("txn", self.seed, pay_id), pay_id, "charge", p["amount_minor"], fee, tax,
             p["amount_minor"] - fee - tax, p["currency"], _ts(at), available),
        )  # fmt: skip
        self._lower_due(available)
        if p["method"] == "card" and world.uniform(self.seed, "dispute", pay_id) < DISPUTE_RATE:
            days = 10 + int(world.uniform(self.seed, "dispute-day", pay_id) * 30)
            dispute_at = _ts(at + timedelta(days=days))
            c.execute("update sim_payments set dispute_at=? where id=?", (dispute_at, pay_id))
            self._lower_due(dispute_at)

    def _lower_due(self, ts: int) -> None:
        """Something new falls due at `ts`: the cached next-due time may only move earlier."""
        if self._due is not None and ts < self._due[1]:
            self._due = (self._due[0], ts)

    def _next_due(self, c: sqlite3.Connection) -> int:
        """The earliest time `_advance` would find anything to do (indexed lookups)."""
        times = c.execute(
            "select (select min(resolve_at) from sim_payments where status='pending'),"
            " (select min(dispute_at) from sim_payments where dispute_at is not null"
            "  and id not in (select payment_id from sim_disputes)),"
            " (select min(available_on) from sim_balance_txns where payout_id is null)"
        ).fetchone()
        return min((x for x in times if x is not None), default=_NEVER)

    def _advance(self, c: sqlite3.Connection, now: datetime) -> None:
        """Bring the world up to `now`: resolve UPI payments, open disputes, pay out settlements."""
        t = _ts(now)
        serial = self.store.cache_ok()
        due = self._due
        if serial is not None and due is not None and due[0] == serial and t < due[1]:
            return  # nothing pending, disputed or payable falls due by `now`
        self._due = None  # recomputed below when this transaction may cache it
        for p in c.execute(
            "select id, resolve_at from sim_payments where status='pending' and resolve_at<=? order by resolve_at, id",
            (t,),
        ).fetchall():
            c.execute(
                "update sim_payments set status=final_status, decline_code=final_code where id=?",
                (p["id"],),
            )
            self._settle_outcome(c, p["id"], _dt(p["resolve_at"]))  # type: ignore[arg-type]
        for p in c.execute(
            "select * from sim_payments where dispute_at<=? and id not in (select payment_id from sim_disputes)"
            " order by dispute_at, id", (t,)
        ).fetchall():  # fmt: skip
            at = _dt(p["dispute_at"])
            assert at is not None
            did = _sid("dp", self.seed, p["id"])
            reason = world.pick(DISPUTE_REASONS, world.uniform(self.seed, "reason", p["id"]))
            c.execute(
                "insert into sim_disputes values (?,?,?,?,?,?,?)",
                (did, p["id"], p["amount_minor"], p["currency"], reason, "needs_response", _ts(at)),
            )
            c.execute(
                "insert into sim_balance_txns values (?,?,?,?,?,?,?,?,?,?,null)",
                (_sid("txn", self.seed, did), did, "dispute", -p["amount_minor"], DISPUTE_FEE_MINOR,
                 (DISPUTE_FEE_MINOR * FEE_GST_PERCENT + 50) // 100,
                 -p["amount_minor"] - DISPUTE_FEE_MINOR - (DISPUTE_FEE_MINOR * FEE_GST_PERCENT + 50) // 100,
                 p["currency"], _ts(at), _ts(settlement_time(at))),
            )  # fmt: skip
            self._event(
                c,
                "charge.dispute.created",
                at,
                did,
                {"id": did, "payment_intent": p["id"], "reason": reason},
            )
        due = c.execute(
            "select available_on, currency, sum(net_minor), sum(fee_minor), sum(fee_tax_minor) from sim_balance_txns"
            " where payout_id is null and available_on<=? group by available_on, currency order by available_on, currency",
            (t,),
        ).fetchall()
        for available_on, currency, net, fee, tax in due:
            # Late-arriving balance (e.g. a caller replaying older times) gets its own batch.
            batch = c.execute(
                "select count(*) from sim_payouts where arrival_at=? and currency=?",
                (available_on, currency),
            ).fetchone()[0]
            po = _sid("po", self.seed, available_on, currency, batch)
            utr = f"SIMU{available_on}{currency}{batch}"
            c.execute(
                "insert into sim_payouts values (?,?,?,?,?,?,?,?,?)",
                (
                    po,
                    net,
                    currency,
                    "paid" if net >= 0 else "failed",
                    available_on,
                    fee,
                    tax,
                    utr,
                    available_on,
                ),
            )
            c.execute(
                "update sim_balance_txns set payout_id=? where payout_id is null and available_on=? and currency=?",
                (po, available_on, currency),
            )
            self._event(
                c,
                "payout.paid",
                _dt(available_on),
                po,
                {"id": po, "amount": net, "currency": currency},
            )  # type: ignore[arg-type]
        if serial is not None:
            self._due = (serial, self._next_due(c))

    def advance(self, now: datetime | None = None) -> None:
        """Let time pass without a request (resolves pending UPI, disputes, payouts)."""
        at = self._now(now)
        with self.store.transaction() as c:
            self._advance(c, at)

    @staticmethod
    def _payload(p: sqlite3.Row) -> dict:
        return {
            "id": p["id"], "object": "payment_intent", "amount": p["amount_minor"],
            "currency": p["currency"].lower(), "status": p["status"], "customer": p["customer_id"],
            "payment_method": p["pm_token"], "method": p["method"], "issuer": p["issuer"],
            "decline_code": p["decline_code"], "metadata": json.loads(p["metadata"]),
            "created": p["created_at"],
        }  # fmt: skip

    @staticmethod
    def _result(p: sqlite3.Row) -> PaymentResult:
        meta = json.loads(p["metadata"])
        return PaymentResult(
            status=PaymentStatus(p["status"]),
            gateway_payment_id=p["id"],
            amount_minor=p["amount_minor"],
            currency=p["currency"],
            decline_code=p["decline_code"],
            decline_message=None,
            idempotency_key=p["idempotency_key"],
            created_at=_dt(p["created_at"]),
            metadata={**meta, "method": p["method"], "issuer": p["issuer"]},
        )

    def fetch_payment(
        self, gateway_payment_id: str, *, now: datetime | None = None
    ) -> PaymentResult:
        at = self._now(now)
        with self.store.transaction() as c:
            self._advance(c, at)
            row = c.execute(
                "select * from sim_payments where id=?", (gateway_payment_id,)
            ).fetchone()
        if row is None:
            raise NotFound(f"no such payment {gateway_payment_id!r}")
        return self._result(row)

    def find_payment(
        self, idempotency_key: str, *, now: datetime | None = None
    ) -> PaymentResult | None:
        at = self._now(now)
        with self.store.transaction() as c:
            self._advance(c, at)
            row = c.execute(
                "select * from sim_payments where idempotency_key=?", (idempotency_key,)
            ).fetchone()
        return self._result(row) if row else None

    def payments_for_invoice(self, invoice_id: str) -> list[PaymentResult]:
        rows = self.store.all(
            "select * from sim_payments where invoice_id=? order by created_at, id", invoice_id
        )
        return [self._result(r) for r in rows]

    # -- refunds -------------------------------------------------------------------------------
    def refund(
        self,
        gateway_payment_id: str,
        amount_minor: int | None = None,
        *,
        idempotency_key: str | None = None,
        now: datetime | None = None,
    ) -> Refund:
        at = self._now(now)
        with self.store.transaction() as c:
            self._advance(c, at)
            if idempotency_key:
                prior = c.execute(
                    "select * from sim_refunds where idempotency_key=?", (idempotency_key,)
                ).fetchone()
                if prior:
                    return self._refund(prior)
            p = c.execute("select * from sim_payments where id=?", (gateway_payment_id,)).fetchone()
            if p is None:
                raise NotFound(f"no such payment {gateway_payment_id!r}")
            if p["status"] != "succeeded":
                raise GatewayError(
                    f"payment {gateway_payment_id} is {p['status']}; only succeeded payments refund"
                )
            left = p["amount_minor"] - p["amount_refunded_minor"]
            amount = left if amount_minor is None else amount_minor
            if amount <= 0 or amount > left:
                raise GatewayError(
                    f"refund of {amount} exceeds the {left} still refundable on {gateway_payment_id}",
                    code="amount_too_large",
                )
            n = c.execute(
                "select count(*) from sim_refunds where payment_id=?", (gateway_payment_id,)
            ).fetchone()[0]
            rid = _sid("re", self.seed, gateway_payment_id, n)
            c.execute(
                "insert into sim_refunds values (?,?,?,?,?,?,?)",
                (
                    rid,
                    gateway_payment_id,
                    amount,
                    p["currency"],
                    "succeeded",
                    _ts(at),
                    idempotency_key,
                ),
            )
            c.execute(
                "update sim_payments set amount_refunded_minor=amount_refunded_minor+? where id=?",
                (amount, gateway_payment_id),
            )
            # The gateway keeps its fee on refunds (as Stripe and Razorpay do).
            self._lower_due(_ts(settlement_time(at)))
            c.execute(
                "insert into sim_balance_txns values (?,?,?,?,0,0,?,?,?,?,null)",
                (_sid("txn", self.seed, rid), rid, "refund", -amount, -amount, p["currency"], _ts(at),
                 _ts(settlement_time(at))),
            )  # fmt: skip
            self._event(
                c,
                "charge.refunded",
                at,
                rid,
                {"id": rid, "payment_intent": gateway_payment_id, "amount": amount},
            )
            row = c.execute("select * from sim_refunds where id=?", (rid,)).fetchone()
        return self._refund(row)

    @staticmethod
    def _refund(r: sqlite3.Row) -> Refund:
        return Refund(
            r["id"],
            r["payment_id"],
            r["amount_minor"],
            r["currency"],
            r["status"],
            _dt(r["created_at"]),
        )


def timeout_rate(seed: int, rate: float, after_share: float = 0.5) -> TimeoutInjector:
    """A deterministic injector: `rate` of keys time out, `after_share` of those after charging."""

    def inject(key: str) -> TimeoutWhen:
        u = world.uniform(seed, "timeout", key)
        if u >= rate:
            return None
        return "after" if u < rate * after_share else "before"

    return inject
