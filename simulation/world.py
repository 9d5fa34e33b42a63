"""The demo world: a seeded business whose customers sign up, change plans, pause, churn, pay and
fail, driving the real billing, collection, retry and dunning code against the simulated gateway."""

from __future__ import annotations

import heapq
import random
import shutil
import time as wall
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, event, func, select

from billing_jobs import service
from billing_jobs.catalog import DEMO_CATALOG, load_catalog
from billing_jobs.catalog.snapshot import CatalogSnapshot, load_snapshot
from billing_jobs.errors import InvalidTransitionError, NotFoundError, ValidationError
from billing_jobs.ledger import make_engine, upgrade_ledger
from billing_jobs.ledger import schema as s
from billing_jobs.ledger.rawsql import ph, sql_insert, sql_many, sql_rows, to_db
from billing_jobs.payments.batch import (
    link_gateway_customers,
    save_collection_states,
    save_method_details,
)
from billing_jobs.payments.charging import (
    AlreadyPaid,
    Attempt,
    AttemptInFlight,
    AttemptStatus,
    InvoiceCharge,
    retry_context,
)
from billing_jobs.payments.declines import DeclineClass, classify
from billing_jobs.payments.dunning import (
    DunningInvoice,
    DunningState,
    load_config,
    start_dunning,
)
from billing_jobs.payments.dunning_run import DunningCase, DunningStep, Effect, advance_dunning
from billing_jobs.payments.gateway import GatewayError
from billing_jobs.payments.retries import ExponentialPolicy
from billing_jobs.subscriptions.batch import (
    NewCustomer,
    NewSubscription,
    create_customers,
    create_subscriptions,
)
from billing_jobs.subscriptions.state import new_subscription_state
from simulation import fraud as fraud_mod
from simulation import population as pop
from simulation.gateway.simulated import SimulatedGateway
from simulation.ledger_ops import BatchOps, RowOps
from simulation.params import SimulationError, SimulationParams, add_months, make_params
from simulation.settlement import unsettled_payments, write_bank_files
from simulation.truth import WorldRecord, write_truth

GATEWAY = "simulated"
SKIPPABLE = (ValidationError, InvalidTransitionError, NotFoundError, GatewayError)


@dataclass
class SimulationResult:
    """Where the world went and what happened in it (JSON-ready via to_dict)."""

    run_dir: Path
    ledger_url: str
    gateway_state_path: Path
    bank_dir: Path
    truth_dir: Path
    warehouse_path: Path | None
    seed: int
    customers: int
    months: int
    start: date
    end: date
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path | date) else v) for k, v in asdict(self).items()}


class Clock:
    """The simulated 'now' the gateway reads when collection calls it without a time."""

    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


@dataclass
class Account:
    """What the simulator remembers of a customer between days (the ledger is the record)."""

    profile: pop.Profile
    customer_id: int
    gateway_customer_id: str
    token: str
    sub_id: int
    plan: str
    seats: int
    churned_at: datetime | None = None
    churn_kind: str | None = None
    past_due: set[int] = field(default_factory=set)


@dataclass
class OpenInvoice:
    invoice_id: int
    account: Account
    sub_id: int | None
    amount_minor: int
    currency: str
    next_at: datetime | None
    dunning: DunningState | None = None
    promised_at: datetime | None = None  # the customer said they would pay then (payday)
    number: str | None = None


class World:
    def __init__(
        self,
        p: SimulationParams,
        engine: Engine,
        gw: SimulatedGateway,
        clock: Clock,
        batched: bool = True,
    ):
        self.p, self.engine, self.gw, self.clock = p, engine, gw, clock
        self.batched = batched
        self.sq = engine.dialect.name == "sqlite"
        self.rng = random.Random(f"paysight-sim:{p.seed}")
        self.end_dt = pop.at_ist(add_months(p.start, p.months), 0)
        self.policy = ExponentialPolicy()
        self.dunning_cfg = load_config()
        self.accounts: dict[int, Account] = {}
        self.invoices: dict[int, OpenInvoice] = {}
        self.open_by_sub: dict[int, set[int]] = {}  # sub id -> its open invoices (an index)
        self.open_by_customer: dict[int, set[int]] = {}
        self.write_off_queue: list[tuple[int, datetime]] = []
        # Invoices in dunning paid or written off since the last dunning run: the next run
        # records how their dunning ended, as it does for a live ledger.
        self.settled: dict[int, OpenInvoice] = {}
        self.dunning_rows: set[int] = set()  # invoices whose collection state the ledger holds
        self.unresolved: set[int] = set()  # attempts left pending/processing/unknown (batched)
        self.max_invoice_seen = 0
        self.counts: dict[str, int] = {}
        self.signals: list[dict[str, Any]] = []
        self.churns: list[dict[str, Any]] = []
        self.fraud: list[fraud_mod.FraudCharge] = []
        self.conn: Connection | None = None
        self.ops: RowOps | None = None
        self.catalog: CatalogSnapshot | None = None
        self.today: date | None = None
        self.now: datetime = self.end_dt
        self.agenda: list[tuple[datetime, int, int, Any]] = []
        self.seq = 0

    def bump(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    # -- the day loop ---------------------------------------------------------------------------
    def run(self) -> None:
        p = self.p
        days = p.days
        signups = pop.signup_days(self.rng, p.customers, p.start, days)
        profiles = [
            pop.make_profile(random.Random(f"{p.seed}:customer:{i}"), i, d, self.end_dt)
            for i, d in enumerate(signups)
        ]
        by_day: dict[date, list[tuple[datetime, int, Any]]] = {}
        for prof in profiles:
            by_day.setdefault(prof.signup_at.astimezone(pop.IST).date(), []).append(
                (prof.signup_at, prof.idx, ("signup", prof))
            )
        bursts = set(fraud_mod.burst_days(random.Random(f"{p.seed}:fraud"), p.start, days))
        self.pending_events: dict[date, list[tuple[datetime, int, Any]]] = by_day
        gw_store = self.gw.store
        for d in range(days):
            day = p.start + timedelta(days=d)
            if self.batched:
                # One gateway transaction per simulated day: its calls join it (SimStore nests).
                gw_store.begin(cache=True)
            with self.engine.begin() as conn:
                self.conn = conn
                self.ops = self._ops(conn)
                if self.catalog is None:
                    self.catalog = load_snapshot(conn)
                if day in bursts:
                    self._fraud(day)
                self._day(day)
                res = service.run_billing(
                    conn, pop.at_ist(day, 23, 50), catalog=self.catalog if self.batched else None
                )
                self.bump("billing_invoices", res.invoices_created)
            self.gw.advance(pop.at_ist(day, 23, 59))
            if self.batched:
                gw_store.commit()
        self._closing_janitor()
        self.conn = self.ops = None

    def _closing_janitor(self) -> None:
        """One last janitor pass at the world's end. The daily pass runs at noon, so a UPI
        payment the gateway resolved that afternoon would otherwise still be pending in the
        handed-over ledger, which a live service (told by webhook within seconds) never is:
        reconciliation at the end would see a gateway success the ledger lacks."""
        at = self.end_dt
        self.gw.advance(at)
        if self.batched:
            self.gw.store.begin(cache=True)
        with self.engine.begin() as conn:
            self.conn = conn
            self.ops = self._ops(conn)
            self.now = at
            self.bump("resolved_at_end", self._janitor(at))
            self._dunning(at)  # and the dunning run, so no paid invoice is left "in dunning"
        if self.batched:
            self.gw.store.commit()

    def _ops(self, conn: Connection) -> RowOps:
        """The ledger operations of one transaction: batched, or the per-row baseline."""
        if self.batched:
            return BatchOps(conn, self.gw, GATEWAY, self._set_time, self.unresolved)
        return RowOps(conn, self.gw, GATEWAY, self._set_time)

    def _cat(self) -> CatalogSnapshot | None:
        """The catalog read once for the whole world (the per-row baseline re-reads it)."""
        return self.catalog if self.batched else None

    def _set_time(self, t: datetime) -> None:
        self.clock.t = t

    def _day(self, day: date) -> None:
        """Everything of one day in time order (the ledger refuses backdated operations):
        charge attempts, the janitor at noon, dunning, and customers' own actions."""
        self._register_new_invoices(day)
        self.today, self.now, self.agenda, self.seq = day, pop.at_ist(day, 0), [], 0
        until = pop.at_ist(day + timedelta(days=1), 0)
        for inv in self.invoices.values():
            if inv.next_at is not None and inv.next_at < until:
                self._push(max(inv.next_at, self.now), 1, ("collect", inv.invoice_id))
        self._push(pop.at_ist(day, 12), 0, ("janitor",))
        self._push(pop.at_ist(day, 12, 5), 0, ("dunning",))
        for at, order, ev in self.pending_events.pop(day, []):
            self._push(at, 2 + order, ev)
        while self.agenda:
            at, _, _, ev = heapq.heappop(self.agenda)
            self.now = at
            if ev[0] == "collect":
                self._collect(self._run_of(at, ev, "collect"))
            elif ev[0] == "signup" and self.batched:
                self._signups(self._run_of(at, ev, "signup"))
            elif ev[0] == "janitor":
                self._janitor(at)
            elif ev[0] == "dunning":
                self._dunning(at)
            else:
                self._event(at, ev)
        self.today = None

    def _run_of(self, at: datetime, ev: Any, kind: str) -> list[tuple[datetime, Any]]:
        """This event and the ones of the same kind right after it on the agenda (nothing
        else happens between them, so they can be written as one batch). A collect run stops
        before an invoice it already holds."""
        run, held = [(at, ev[1])], {id(ev[1])} if kind == "signup" else {ev[1]}
        while self.agenda and self.agenda[0][3][0] == kind:
            key = id(self.agenda[0][3][1]) if kind == "signup" else self.agenda[0][3][1]
            if key in held:
                break
            held.add(key)
            nxt_at, _, _, nxt = heapq.heappop(self.agenda)
            run.append((nxt_at, nxt[1]))
        return run

    def _push(self, at: datetime, order: int, ev: Any) -> None:
        self.seq += 1
        heapq.heappush(self.agenda, (at, order, self.seq, ev))

    def schedule(self, at: datetime, order: int, ev: Any) -> None:
        day = at.astimezone(pop.IST).date()
        if day == self.today and at >= self.now:
            self._push(at, 2 + order, ev)  # later today: joins the running agenda
        else:
            self.pending_events.setdefault(day, []).append((at, order, ev))

    def plan_attempt(self, inv: OpenInvoice, at: datetime) -> None:
        """Set the next attempt; one due later today joins the running agenda."""
        inv.next_at = at
        if self.today is not None and at.astimezone(pop.IST).date() == self.today:
            self._push(max(at, self.now), 1, ("collect", inv.invoice_id))

    # -- customer behaviour ---------------------------------------------------------------------
    def _event(self, at: datetime, ev: Any) -> None:
        kind = ev[0]
        assert self.conn is not None
        try:
            with self._savepoint():
                if kind == "signup":
                    self._signup(at, ev[1])
                elif kind == "story":
                    self._story(at, ev[1], ev[2])
                elif kind == "new_method":
                    self._new_method(at, ev[1])
        except SKIPPABLE:
            self.bump(f"skipped_{kind}")

    @contextmanager
    def _savepoint(self) -> Iterator[None]:
        """A savepoint in plain SQL (SQLite and PostgreSQL): what `begin_nested` does, without
        compiling a savepoint clause per event (that was ~3% of a world's CPU time)."""
        conn = self.conn
        assert conn is not None
        sql_rows(conn, "SAVEPOINT sim_event")
        try:
            yield
        except BaseException:
            sql_rows(conn, "ROLLBACK TO SAVEPOINT sim_event")
            sql_rows(conn, "RELEASE SAVEPOINT sim_event")
            raise
        sql_rows(conn, "RELEASE SAVEPOINT sim_event")

    def _signup(self, at: datetime, prof: pop.Profile) -> None:
        conn = self.conn
        assert conn is not None
        cust = service.create_customer(
            conn, name=prof.name, state_code=prof.state_code, currency=prof.currency, now=at,
            email=f"billing+{prof.idx}@example.in", gstin=prof.gstin, tax_status=prof.tax_status,
            external_ref=f"sim-{self.p.seed}-{prof.idx}",
        )  # fmt: skip
        gcus = self.gw.create_customer(
            email=f"billing+{prof.idx}@example.in", name=prof.name,
            metadata={"paysight_customer_id": str(cust["id"])}, now=at,
        )  # fmt: skip
        pm = self.gw.attach_payment_method(gcus.gateway_customer_id, prof.token)
        self._ledger_method(cust["id"], pm.token, prof.method, prof.mandate, at)
        plan, qty, addons = self._items(prof.plan, prof.seats)
        sub = service.create_subscription(
            conn, customer_id=cust["id"], plan=plan, start=at, quantity=qty, addons=addons,
            coupon=self._coupon(prof),
        )  # fmt: skip
        self._account(prof, cust["id"], gcus.gateway_customer_id, pm.token, sub["id"], plan)

    def _signups(self, run: list[tuple[datetime, pop.Profile]]) -> None:
        """A run of sign-ups as one batch: customers, gateway customers and methods, ledger
        methods, subscriptions and first invoices, in time order (the same rows `_signup`
        writes one by one)."""
        conn, catalog = self.conn, self.catalog
        assert conn is not None and catalog is not None
        ok: list[tuple[datetime, pop.Profile, tuple[str, int, dict[str, int]]]] = []
        for at, prof in run:
            items = self._items(prof.plan, prof.seats)
            try:  # refuse a sign-up before anything of it is written, as the savepoint would
                new_subscription_state(catalog, 0, prof.currency, items[0], at, items[1],
                                       items[2], self._coupon(prof))  # fmt: skip
            except SKIPPABLE:
                self.bump("skipped_signup")
                continue
            ok.append((at, prof, items))
        made = create_customers(conn, [
            NewCustomer(prof.name, prof.state_code, prof.currency, at,
                        email=f"billing+{prof.idx}@example.in", gstin=prof.gstin,
                        tax_status=prof.tax_status, external_ref=f"sim-{self.p.seed}-{prof.idx}")
            for at, prof, _ in ok
        ])  # fmt: skip
        live = []
        for (at, prof, items), cid in zip(ok, made, strict=True):
            if isinstance(cid, Exception):
                self.bump("skipped_signup")
                continue
            gcus = self.gw.create_customer(
                email=f"billing+{prof.idx}@example.in", name=prof.name,
                metadata={"paysight_customer_id": str(cid)}, now=at,
            )  # fmt: skip
            pm = self.gw.attach_payment_method(gcus.gateway_customer_id, prof.token)
            live.append((at, prof, items, cid, gcus.gateway_customer_id, pm.token))
        self._ledger_methods([(cid, tok, prof.method, prof.mandate, at)
                              for at, prof, _, cid, _, tok in live])  # fmt: skip
        subs = create_subscriptions(conn, [
            NewSubscription(cid, items[0], at, items[1], items[2], self._coupon(prof))
            for at, prof, items, cid, _, _ in live
        ], catalog=catalog)  # fmt: skip
        for (_, prof, items, cid, gcus, tok), sub_id in zip(live, subs, strict=True):
            if isinstance(sub_id, Exception):  # validated above; the ledger disagrees: a bug
                raise SimulationError(f"sign-up of customer {prof.idx} refused: {sub_id}")
            self._account(prof, cid, gcus, tok, sub_id, items[0])

    @staticmethod
    def _coupon(prof: pop.Profile) -> str | None:
        return prof.coupon if prof.currency == "INR" else None

    def _account(
        self, prof: pop.Profile, cid: int, gcus: str, token: str, sub_id: int, plan: str
    ) -> None:
        acct = Account(prof, cid, gcus, token, sub_id, plan, prof.seats)
        self.accounts[cid] = acct
        self.bump("customers")
        for i, e in enumerate(prof.story):
            self.schedule(e.at, 1_000_000 + prof.idx * 100 + i, ("story", acct, e))

    def _ledger_method(self, cid: int, token: str, kind: str, mandate: bool, at: datetime) -> None:
        self._ledger_methods([(cid, token, kind, mandate, at)])

    def _ledger_methods(self, rows: list[tuple[int, str, str, bool, datetime]]) -> None:
        """The customer's new default method (a gateway token, never card data) replaces the
        previous one; plain statements, as this runs for every sign-up and card change. A card
        added again (the same token) gets its old row back, as `add_payment_method` does."""
        conn = self.conn
        assert conn is not None
        if not rows:
            return
        p = ph(conn)
        sql_many(
            conn,
            f"UPDATE payment_methods SET removed_at = {p}, is_default = {p} "
            f"WHERE customer_id = {p} AND removed_at IS NULL",
            [(to_db(self.sq, at), False, cid) for cid, _, _, _, at in rows],
        )
        tokens = [r[1] for r in rows]
        known = {t for (t,) in sql_rows(
            conn,
            f"SELECT gateway_token FROM payment_methods WHERE gateway = {p} AND gateway_token IN "
            f"({', '.join([p] * len(tokens))})",
            (GATEWAY, *tokens),
        )}  # fmt: skip
        values = [
            (cid, GATEWAY, token, kind, f"{kind} (simulated)", True,
             f"mdt_{token[-12:]}" if mandate else None, to_db(self.sq, at))
            for cid, token, kind, mandate, at in rows
        ]  # fmt: skip
        sql_many(
            conn,
            f"UPDATE payment_methods SET customer_id = {p}, kind = {p}, label = {p}, "
            f"is_default = {p}, mandate_ref = {p}, created_at = {p}, removed_at = NULL "
            f"WHERE gateway = {p} AND gateway_token = {p}",
            [(v[0], v[3], v[4], v[5], v[6], v[7], v[1], v[2]) for v in values if v[2] in known],
        )
        sql_insert(
            conn, "payment_methods",
            ("customer_id", "gateway", "gateway_token", "kind", "label", "is_default",
             "mandate_ref", "created_at"),
            [v for v in values if v[2] not in known],
        )  # fmt: skip

    @staticmethod
    def _items(plan: str, seats: int) -> tuple[str, int, dict[str, int]]:
        if plan.startswith("starter"):
            return plan, 1, {}
        if plan.startswith("growth"):
            return plan, max(1, seats), {}
        extra = max(0, seats - pop.SCALE_INCLUDED_SEATS)
        addon = {"scale-monthly": "seats-monthly", "scale-yearly": "seats-yearly"}.get(plan)
        return plan, 1, ({addon: extra} if addon and extra else {})

    def _story(self, at: datetime, acct: Account, e: pop.Planned) -> None:
        conn = self.conn
        assert conn is not None
        if acct.churned_at is not None:
            return
        k = e.kind
        done = True
        if k in ("add_seats", "remove_seats"):
            if acct.plan.startswith("starter") or acct.plan == "scale-quarterly":
                return
            n = e.args["n"] if k == "add_seats" else -e.args["n"]
            floor = pop.SCALE_INCLUDED_SEATS if acct.plan.startswith("scale") else 1
            seats = max(floor, acct.seats + n)
            if seats == acct.seats:
                return
            plan, qty, addons = self._items(acct.plan, seats)
            if acct.plan.startswith("scale") and not addons:
                addon = {"scale-monthly": "seats-monthly", "scale-yearly": "seats-yearly"}[plan]
                addons = {addon: 0}
            service.change_subscription(
                conn, acct.sub_id, at=at, quantity=qty if plan.startswith("growth") else None,
                addons=addons or None, catalog=self._cat(),
            )  # fmt: skip
            acct.seats = seats
        elif k in ("upgrade", "downgrade"):
            ladder = pop.LADDER[pop.INTERVAL[acct.plan]]
            i = ladder.index(acct.plan) + (1 if k == "upgrade" else -1)
            if not 0 <= i < len(ladder):
                return
            new = ladder[i]
            seats = max(acct.seats, pop.SCALE_INCLUDED_SEATS) if new.startswith("scale") else (
                acct.seats)  # fmt: skip
            plan, qty, addons = self._items(new, seats)
            if acct.plan.startswith("scale"):
                old_addon = {"scale-monthly": "seats-monthly", "scale-yearly": "seats-yearly"}
                if acct.plan in old_addon:
                    addons = {**addons, old_addon[acct.plan]: 0}
            service.change_subscription(
                conn, acct.sub_id, at=at, plan=plan, quantity=qty, addons=addons or None,
                when=e.args.get("when", "now"), catalog=self._cat(),
            )  # fmt: skip
            acct.plan, acct.seats = new, seats
        elif k == "pause":
            service.pause_subscription(conn, acct.sub_id, at=at, catalog=self._cat())
        elif k == "resume":
            service.resume_subscription(conn, acct.sub_id, at=at, catalog=self._cat())
        elif k in ("cancel", "cancel_period_end"):
            try:
                service.cancel_subscription(conn, acct.sub_id, at=at, catalog=self._cat(),
                                            at_period_end=k == "cancel_period_end")  # fmt: skip
            except InvalidTransitionError:
                if k != "cancel_period_end":
                    raise
                # Paused or past due: there is no period end to wait for, so cancel now.
                service.cancel_subscription(conn, acct.sub_id, at=at, catalog=self._cat())
            self._churned(acct, at, "voluntary")
        elif k == "revoke_method":
            self.gw.detach_payment_method(acct.token)
        elif k == "update_method":
            self._new_method(at, acct)
        else:
            done = False
        if done:
            self.bump(f"story_{k}")
            self.signals.append({
                "customer_id": acct.customer_id, "subscription_id": acct.sub_id, "at": at,
                "kind": k, "precedes_churn": e.signal,
            })  # fmt: skip

    def _new_method(self, at: datetime, acct: Account) -> None:
        """The customer adds a fresh card (after an expiry or a hard decline)."""
        if acct.churned_at is not None:
            return
        rng = random.Random(f"{self.p.seed}:method:{acct.customer_id}:{at.isoformat()}")
        issuer = pop.pick(rng, pop.ISSUERS["card"])
        exp = date(at.year + rng.randint(2, 5), rng.randint(1, 12), 1)
        pm = self.gw.attach_payment_method(acct.gateway_customer_id,
                                           pop.card_token(rng, issuer, exp))  # fmt: skip
        acct.token = pm.token
        self._ledger_method(acct.customer_id, pm.token, "card", False, at)
        self.bump("payment_method_updates")
        for inv in self._open_of_customer(acct.customer_id):
            if inv.dunning is not None:
                # The customer pays the open invoice with it right away.
                soon = at + timedelta(minutes=30)
                self.plan_attempt(inv, soon if inv.next_at is None else min(inv.next_at, soon))

    def _churned(self, acct: Account, at: datetime, kind: str) -> None:
        if acct.churned_at is None:
            acct.churned_at, acct.churn_kind = at, kind
            self.churns.append({
                "customer_id": acct.customer_id, "subscription_id": acct.sub_id,
                "churned_at": at, "kind": kind,
                "on_purpose": acct.profile.intended_churn_at is not None,
                "intended_churn_at": acct.profile.intended_churn_at,
            })  # fmt: skip
            self.bump(f"churn_{kind}")
        if kind == "voluntary":
            self._write_offs([(inv, at) for inv in self._open_of_customer(acct.customer_id)])

    # -- collection, retries, dunning -----------------------------------------------------------
    def _track(self, inv: OpenInvoice) -> None:
        self.invoices[inv.invoice_id] = inv
        if inv.sub_id is not None:
            self.open_by_sub.setdefault(inv.sub_id, set()).add(inv.invoice_id)
        self.open_by_customer.setdefault(inv.account.customer_id, set()).add(inv.invoice_id)

    def _untrack(self, invoice_id: int) -> None:
        inv = self.invoices.pop(invoice_id, None)
        if inv is not None:
            if inv.sub_id is not None:
                self.open_by_sub[inv.sub_id].discard(invoice_id)
            self.open_by_customer[inv.account.customer_id].discard(invoice_id)

    def _open_of_customer(self, customer_id: int) -> list[OpenInvoice]:
        """The customer's open invoices in registration (id) order."""
        return [self.invoices[i] for i in sorted(self.open_by_customer.get(customer_id, ()))]

    def _register_new_invoices(self, day: date) -> None:
        assert self.conn is not None
        p = ph(self.conn)
        rows = sql_rows(
            self.conn,
            "SELECT id, customer_id, subscription_id, status, amount_due_minor, amount_paid_minor,"
            f" currency, number FROM invoices WHERE id > {p} ORDER BY id",
            (self.max_invoice_seen,),
        )
        for inv_id, cid, sub_id, status, amount_due, amount_paid, currency, number in rows:
            self.max_invoice_seen = inv_id
            due = amount_due - amount_paid
            if status != "open" or due <= 0:
                continue
            u = random.Random(f"{self.p.seed}:collect:{inv_id}").random()
            first = pop.at_ist(day, 6) + timedelta(seconds=int(u * 5 * 3600))
            self._track(
                OpenInvoice(inv_id, self.accounts[cid], sub_id, due, currency, first, number=number)
            )

    def _collect(self, run: list[tuple[datetime, int]]) -> None:
        """A run of due charge attempts: charged in time order through the ledger ops, then
        payments recorded and failures planned in the same order."""
        assert self.ops is not None
        due = []
        for at, inv_id in run:
            inv = self.invoices.get(inv_id)
            # Skip stale entries: the attempt was re-planned or already made.
            if inv is not None and inv.next_at is not None and inv.next_at <= at:
                due.append((at, inv))
        if not due:
            return
        results = self.ops.collect([(self._charge(inv), at) for at, inv in due])
        self._apply([(inv, res, at) for (at, inv), res in zip(due, results, strict=True)], True)

    def _apply(
        self, outcomes: list[tuple[OpenInvoice | None, Any, datetime]], attempts: bool = False
    ) -> None:
        """Outcomes in order. Paid invoices are marked in one batch first and the attempt
        histories of failed ones read in one query: neither depends on the other outcomes."""
        assert self.ops is not None
        paying = [
            (inv.invoice_id if inv else int(res.invoice_id),
             at if isinstance(res, AlreadyPaid) else res.updated_at)
            for inv, res, at in outcomes
            if isinstance(res, AlreadyPaid)
            or (isinstance(res, Attempt) and res.status is AttemptStatus.SUCCEEDED)
        ]  # fmt: skip
        marked = iter(self.ops.mark_paid(paying))
        failed = [inv.invoice_id for inv, res, _ in outcomes
                  if inv is not None and isinstance(res, Attempt)
                  and res.status is AttemptStatus.FAILED]  # fmt: skip
        history = self.ops.attempts(failed) if failed else {}
        for inv, res, at in outcomes:
            self.now = at
            paid = isinstance(res, AlreadyPaid) or (
                isinstance(res, Attempt) and res.status is AttemptStatus.SUCCEEDED
            )
            if inv is None:  # the janitor learned the fate of a written-off invoice
                if paid and next(marked):
                    self.bump("late_payments_after_write_off")
                continue
            if isinstance(res, AttemptInFlight):
                inv.next_at = None
                continue
            if attempts and not isinstance(res, AlreadyPaid):
                self.bump("attempts")
            if paid:
                self._paid(inv, res.updated_at if isinstance(res, Attempt) else at, next(marked))
            else:
                self._outcome(inv, res, at, history.get(str(inv.invoice_id), []))

    def _charge(self, inv: OpenInvoice) -> InvoiceCharge:
        return InvoiceCharge(str(inv.invoice_id), inv.account.gateway_customer_id,
                             inv.account.token, inv.amount_minor, inv.currency,
                             {"paysight_customer_id": str(inv.account.customer_id)})  # fmt: skip

    def _outcome(
        self, inv: OpenInvoice, a: Attempt, now: datetime, attempts: list[Attempt]
    ) -> None:
        if a.status is not AttemptStatus.FAILED:
            inv.next_at = None  # processing (UPI) or unknown: the janitor resolves it
            return
        self.bump("failed_attempts")
        ctx = retry_context(self._charge(inv), attempts, GATEWAY,
                            mandate=inv.account.profile.mandate)  # fmt: skip
        decision = self.policy.next_attempt(ctx) if ctx else None
        inv.next_at = decision.at if decision and decision.retry else None
        if inv.promised_at is not None and inv.promised_at > now:
            # A promise to pay on payday stands even when the retry schedule says otherwise.
            inv.next_at = min(inv.next_at or inv.promised_at, inv.promised_at)
        if inv.next_at is not None:
            self.plan_attempt(inv, inv.next_at)
        if inv.next_at is None and (
            classify(GATEWAY, a.decline_code) is not DeclineClass.SOFT
            and inv.account.profile.intended_churn_at is None
            and inv.account.churned_at is None
        ):
            # A payer who wants to stay replaces a dead instrument within days.
            rng = random.Random(f"{self.p.seed}:fix:{inv.invoice_id}:{len(attempts)}")
            if rng.random() < 0.7:
                fix_at = pop.at_ist(
                    (now + timedelta(days=rng.randint(1, 5))).astimezone(pop.IST).date(), 10
                ) + timedelta(minutes=rng.randrange(600))
                self.schedule(fix_at, 0, ("new_method", inv.account))
        if inv.dunning is None:
            inv.dunning = start_dunning(
                DunningInvoice(str(inv.invoice_id), str(inv.account.customer_id),
                               inv.amount_minor, inv.currency), a.updated_at,
            )  # fmt: skip
            if inv.sub_id is not None:
                self._transition(inv.account, inv.sub_id, "past_due", now, "payment_failed")

    def _transition(self, acct: Account, sub_id: int, to: str, at: datetime, reason: str) -> None:
        """past_due on a failure, active again once paid; the simulator remembers which
        subscriptions it moved, so no status query is needed per payment."""
        assert self.ops is not None
        if (to == "past_due") == (sub_id in acct.past_due):
            return
        if not self.ops.transition(sub_id, to, at, reason):
            return  # paused or canceled meanwhile
        if to == "past_due":
            acct.past_due.add(sub_id)
        else:
            acct.past_due.discard(sub_id)

    def _paid(self, inv: OpenInvoice, at: datetime, marked: bool) -> None:
        """The ledger has marked the invoice paid (`marked`), or refused because it was."""
        self._untrack(inv.invoice_id)
        if inv.dunning is not None:
            self.settled[inv.invoice_id] = inv
        if not marked:
            return
        self.bump("invoices_paid")
        if inv.dunning is not None:
            self.bump("dunning_recovered")
        if inv.sub_id is not None and not any(
            self.invoices[o].dunning is not None for o in self.open_by_sub.get(inv.sub_id, ())
        ):
            self._transition(inv.account, inv.sub_id, "active", at, "payment_recovered")

    def _janitor(self, now: datetime) -> int:
        """Ask the gateway about every unresolved attempt; returns how many it resolved."""
        assert self.ops is not None
        resolved = self.ops.resolve(now)
        out: list[tuple[OpenInvoice | None, Any, datetime]] = []
        for a in resolved:
            inv = self.invoices.get(int(a.invoice_id))
            if inv is not None:
                out.append((inv, a, now))
            elif a.status is AttemptStatus.SUCCEEDED:
                # Paid after it was written off (a late UPI success): record the money.
                out.append((None, a, now))
        self._apply(out)
        return len(resolved)

    def _dunning(self, now: datetime) -> None:
        """The product's dunning run (`advance_dunning`) on the world's failing invoices and on
        those settled since the last run; then customers react to what they were told."""
        assert self.conn is not None
        held = {inv.invoice_id: inv for inv in self.invoices.values() if inv.dunning is not None}
        cases = [self._dunning_case(inv, "open", inv.amount_minor) for inv in held.values()]
        cases += self._settled_cases()
        if not cases:
            return
        steps, report = advance_dunning(
            self.conn, cases, now, self.dunning_cfg, catalog=self._cat()
        )
        self.bump("dunning_notifications", report.notifications)
        self.bump("dunning_mails", report.mails_queued)
        for step in steps:
            self.dunning_rows.add(step.case.invoice_id)
            inv = held.get(step.case.invoice_id)
            if inv is None:  # settled: the run recorded how dunning ended
                continue
            inv.dunning = step.state
            self._react_to_dunning(inv, step, now)

    def _dunning_case(self, inv: OpenInvoice, status: str, due: int) -> DunningCase:
        assert inv.dunning is not None
        acct = inv.account
        return DunningCase(
            inv.invoice_id, acct.customer_id, inv.sub_id, GATEWAY, inv.dunning, status, due,
            inv.currency, inv.next_at if status == "open" else None, inv.number,
            f"billing+{acct.profile.idx}@example.in", acct.profile.name,
            stored=inv.invoice_id in self.dunning_rows,
        )  # fmt: skip

    def _settled_cases(self) -> list[DunningCase]:
        """Cases for the invoices settled since the last run, with their status and amount
        still due as the ledger has them now."""
        assert self.conn is not None
        if not self.settled:
            return []
        ids, p = sorted(self.settled), ph(self.conn)
        now_in_ledger: dict[int, tuple[str, int]] = {}
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            for inv_id, status, due in sql_rows(
                self.conn,
                "SELECT id, status, amount_due_minor - amount_paid_minor FROM invoices "
                f"WHERE id IN ({', '.join([p] * len(part))})",
                tuple(part),
            ):
                now_in_ledger[inv_id] = (status, due)
        out = [self._dunning_case(self.settled[i], *now_in_ledger[i]) for i in ids]
        self.settled = {}
        return out

    def _react_to_dunning(self, inv: OpenInvoice, step: DunningStep, now: datetime) -> None:
        """What the run did to the subscription, and what customers do when reminded: some add
        a new card, some promise to pay on payday."""
        acct = inv.account
        if acct.profile.intended_churn_at is None and acct.churned_at is None:
            for note in step.notifications:
                if note.kind != "remind":
                    continue
                rng = random.Random(f"{self.p.seed}:remind:{inv.invoice_id}:{note.due_at}")
                u = rng.random()
                if u < 0.3:
                    day = (now + timedelta(days=rng.randint(0, 2))).astimezone(pop.IST).date()
                    when = pop.at_ist(day, 13) + timedelta(minutes=rng.randrange(420))
                    self.schedule(when, 0, ("new_method", acct))
                elif u < 0.6:
                    # "I'll pay when the salary comes in": the 1st, before dunning closes.
                    local = now.astimezone(pop.IST).date()
                    first = (local.replace(day=28) + timedelta(days=4)).replace(day=1)
                    close = step.state.started_at + timedelta(days=20)
                    when = min(pop.at_ist(first, 10) + timedelta(minutes=rng.randrange(480)),
                               close)  # fmt: skip
                    if when > now:
                        inv.promised_at = when
                        self.plan_attempt(
                            inv, when if inv.next_at is None else min(inv.next_at, when)
                        )
        if step.effect in (Effect.RESTRICT, Effect.MARK_UNPAID) and inv.sub_id is not None:
            acct.past_due.add(inv.sub_id)  # unpaid now; a payment makes it active again
        if step.effect is Effect.MARK_UNPAID:
            inv.next_at = None  # dunning is over: no more retries, the invoice waits
            self._untrack(inv.invoice_id)
        elif step.effect is Effect.CANCEL:
            # The run canceled the subscription and wrote the invoice off.
            self._untrack(inv.invoice_id)
            self.bump("invoices_uncollectible")
            if acct.sub_id == inv.sub_id:
                self._churned(acct, now, "involuntary")

    def _write_off(self, inv: OpenInvoice, at: datetime) -> None:
        """Forget the invoice now; the ledger write joins the pass's batch (`_flush_write_offs`)."""
        self._untrack(inv.invoice_id)
        if inv.dunning is not None:
            self.settled[inv.invoice_id] = inv
        self.write_off_queue.append((inv.invoice_id, at))

    def _write_offs(self, items: list[tuple[OpenInvoice, datetime]]) -> None:
        for inv, at in items:
            self._write_off(inv, at)
        self._flush_write_offs()

    def _flush_write_offs(self) -> None:
        assert self.ops is not None
        if self.write_off_queue:
            done = self.ops.write_off(self.write_off_queue)
            self.bump("invoices_uncollectible", sum(done))
            self.write_off_queue = []

    # -- hand-over to the payments service --------------------------------------------------------
    def hand_over(self) -> None:
        """Record what the payments service needs to carry on with this world: which gateway
        customer each ledger customer is, the display details of each saved method token,
        and every failing invoice's next retry and dunning state (so `run_due_retries` and
        `run_dunning` pick them up; invoices not yet charged are left to
        `collect_open_invoices`)."""
        at = self.end_dt
        with self.engine.begin() as conn:
            links = [(a.customer_id, a.gateway_customer_id) for a in self.accounts.values()]
            self.bump("gateway_links", link_gateway_customers(conn, GATEWAY, links, at))
            states = [(inv.invoice_id, inv.next_at, inv.dunning)
                      for inv in self.invoices.values() if inv.dunning is not None]  # fmt: skip
            self.bump("collection_states", save_collection_states(conn, GATEWAY, states, at))
            card = {r[0]: tuple(r[1:]) for r in self.gw.store.all(
                "select token, brand, last4, exp_month, exp_year, issuer from sim_payment_methods"
            )}  # fmt: skip
            methods = sql_rows(conn, "SELECT id, gateway_token FROM payment_methods")
            details = [(mid, *card[tok]) for mid, tok in methods if tok in card]
            self.bump("method_details", save_method_details(conn, details))

    def record(self) -> WorldRecord:
        """The ground truth of this world, for `simulation.truth` (which no detector reads)."""
        customers = [
            {
                "customer_id": a.customer_id,
                "gateway_customer_id": a.gateway_customer_id,
                "segment": a.profile.segment,
                "state_code": a.profile.state_code,
                "tax_status": a.profile.tax_status,
                "method": a.profile.method,
                "issuer": a.profile.issuer,
                "mandate": a.profile.mandate,
                "signup_at": a.profile.signup_at,
                "churn_intended": a.profile.intended_churn_at is not None,
                "intended_churn_at": a.profile.intended_churn_at,
                "churned_at": a.churned_at,
                "churn_kind": a.churn_kind,
            }
            for a in self.accounts.values()
        ]
        p = self.p
        run = {"seed": p.seed, "customers": p.customers, "months": p.months,
               "start": p.start.isoformat(), **{f"count_{k}": v for k, v in self.counts.items()}}  # fmt: skip
        return WorldRecord(customers, self.churns, self.signals, self.fraud, run)

    # -- fraud ----------------------------------------------------------------------------------
    def _fraud(self, day: date) -> None:
        rng = random.Random(f"{self.p.seed}:burst:{day.isoformat()}")
        live = [a for a in self.accounts.values() if a.churned_at is None]
        if not live:
            return
        victims = rng.sample(live, min(len(live), rng.randint(1, 3)))
        rows = [
            (a.customer_id, a.gateway_customer_id,
             100 * pop.MONTHLY_PRICE_INR[a.plan] * (a.seats if a.plan.startswith("growth") else 1)
             if a.profile.currency == "INR" else 100 * 40, a.profile.currency)
            for a in victims
        ]  # fmt: skip
        charges = fraud_mod.run_burst(rng, self.gw, f"burst-{day.isoformat()}", day, rows)
        self.fraud.extend(charges)
        self.bump("fraud_charges", len(charges))


def _prepare(run_dir: Path, engine_url: str | None, overwrite: bool) -> tuple[str, Path]:
    run_dir.mkdir(parents=True, exist_ok=True)
    gw_path = run_dir / "gateway.sqlite"
    url = engine_url or f"sqlite:///{run_dir / 'ledger.sqlite'}"
    ledger_file = Path(url.split("///", 1)[1]) if url.startswith("sqlite:///") else None
    leftovers = [x for x in (gw_path, ledger_file, run_dir / "sim_truth") if x and x.exists()]
    if leftovers and not overwrite:
        raise SimulationError(
            f"{', '.join(map(str, leftovers))} already exist; pass overwrite=True or a fresh run_dir"
        )
    for x in leftovers:
        if x.is_dir():
            shutil.rmtree(x)
        else:
            x.unlink()
            for suffix in ("-wal", "-shm"):
                Path(str(x) + suffix).unlink(missing_ok=True)
    return url, gw_path


def _fast_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _relaxed(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        # A simulated world is rebuilt from its seed after a crash, so it need not fsync.
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA synchronous=OFF")
        # A 24-month world outgrows SQLite's 2 MB default page cache; index lookups then
        # go to the OS for every attempt and invoice.
        cur.execute("PRAGMA cache_size=-131072")
        cur.close()


def simulate(
    engine_url: str | None = None,
    run_dir: str | Path = "data/sim",
    *,
    customers: int = 5000,
    months: int = 24,
    seed: int = 42,
    start: date | str = date(2025, 1, 1),
    landing_dir: str | Path | None = None,
    warehouse_path: str | Path | None = None,
    overwrite: bool = False,
    batched: bool = True,
) -> SimulationResult:
    """Build the demo world. Writes the ledger (`engine_url`, default `<run_dir>/ledger.sqlite`),
    the gateway state `<run_dir>/gateway.sqlite`, bank files `<landing_dir>/bank/settlement_*.csv`
    (default landing `<run_dir>/landing`) and ground truth `<run_dir>/sim_truth/*.parquet`
    (also schema `sim_truth` of the DuckDB at `warehouse_path` when given). Deterministic.
    `batched=False` writes the ledger one service call per operation (the slower original
    path, kept as the benchmark's baseline); both build the same world."""
    p = make_params(customers, months, seed, start, run_dir)
    began = wall.perf_counter()
    url, gw_path = _prepare(p.run_dir, engine_url, overwrite)
    engine = make_engine(url)
    if engine.dialect.name == "sqlite":
        _fast_sqlite(engine)
    try:
        upgrade_ledger(engine)
        with engine.connect() as conn:
            n = conn.execute(select(func.count()).select_from(s.customers)).scalar_one()
        if n:
            raise SimulationError(f"the ledger at {url} already has {n} customers; use a fresh one")
        start_at = pop.at_ist(p.start, 0)
        load_catalog(engine, DEMO_CATALOG, now=start_at - timedelta(days=1))
        clock = Clock(start_at)
        gw = SimulatedGateway(p.seed, 1, state=gw_path, clock=clock)
        gw.store.conn.execute("pragma synchronous=off")
        gw.store.conn.execute("pragma cache_size=-131072")
        world = World(p, engine, gw, clock, batched=batched)
        world.run()
        world.hand_over()
        gw.store.close()
    finally:
        engine.dispose()
    landing = Path(landing_dir) if landing_dir is not None else p.run_dir / "landing"
    bank_dir = landing / "bank"
    files, discrepancies = write_bank_files(gw_path, bank_dir, p.seed, world.end_dt)
    world.counts["bank_files"] = len(files)
    world.counts["discrepancies"] = len(discrepancies)
    truth_dir = p.run_dir / "sim_truth"
    unsettled = unsettled_payments(gw_path, world.end_dt, discrepancies)
    world.counts["unsettled_at_end"] = len(unsettled)
    write_truth(truth_dir, world.record(), discrepancies, warehouse_path, unsettled=unsettled)
    end = add_months(p.start, p.months)
    return SimulationResult(
        run_dir=p.run_dir, ledger_url=url, gateway_state_path=gw_path, bank_dir=bank_dir,
        truth_dir=truth_dir, warehouse_path=Path(warehouse_path) if warehouse_path else None,
        seed=p.seed, customers=p.customers, months=p.months, start=p.start, end=end,
        counts=dict(sorted(world.counts.items())), seconds=round(wall.perf_counter() - began, 2),
    )  # fmt: skip


__all__ = ["SimulationError", "SimulationResult", "simulate"]
