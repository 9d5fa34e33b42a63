"""Operator commands: catalog and plans, customers, subscriptions and billing runs on the ledger.

Every command that changes something takes ``--at`` (default: now) because domain functions
take time as an argument, and prints what it did (ids, numbers, amounts as money); ``--json``
prints the same as JSON with money in minor units. Domain errors become one clear line on
stderr and exit code 2; nothing is written when a command is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from orchestration.cli_args import (
    parse_count,
    parse_country,
    parse_email,
    parse_gstin,
    parse_instant,
    parse_name,
    parse_postal_code,
    parse_state_code,
    parse_text,
)
from orchestration.cli_output import emit, money, table
from orchestration.lib.env import SettingsError, load_settings

__all__ = ["AtOption", "JsonOption", "emit", "ledger", "parse_instant", "run_domain"]

AtOption = Annotated[
    str | None,
    typer.Option("--at", help="Instant of the operation (ISO 8601; default: now)."),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Machine-readable output (money in minor units).")
]
LimitOption = Annotated[int, typer.Option("--limit", help="At most this many rows.")]
# Ids are BIGINT in the ledger; quantities and trial days are bounded by the domain.
MAX_ID = 2**63 - 1
IdArg = Annotated[int, typer.Argument(min=1, max=MAX_ID)]
CustomerOption = Annotated[int | None, typer.Option("--customer", min=1, max=MAX_ID)]
SubscriptionOption = Annotated[int | None, typer.Option("--subscription", min=1, max=MAX_ID)]
QUANTITY_MAX = 1_000_000

customers_app = typer.Typer(help="Billing customers.", no_args_is_help=True)
subscriptions_app = typer.Typer(help="Subscription lifecycle.", no_args_is_help=True)
billing_app = typer.Typer(help="The billing run.", no_args_is_help=True)
catalog_app = typer.Typer(help="The product catalog.", no_args_is_help=True)
plans_app = typer.Typer(help="Plans of the catalog.", no_args_is_help=True)


@contextmanager
def ledger() -> Iterator[Any]:
    """The migrated ledger engine from settings; configuration errors exit with code 2."""
    from billing_jobs.ledger import make_engine, upgrade_ledger

    try:
        settings = load_settings()
    except SettingsError as exc:
        typer.secho(f"paysight: configuration error\n{exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from None
    engine = make_engine(settings.ledger_url)
    upgrade_ledger(engine)
    try:
        yield engine
    finally:
        engine.dispose()


def run_domain(action: Callable[[Any], Any]) -> Any:
    """Run an action against the ledger, turning domain errors into a clear exit."""
    from billing_jobs.errors import BillingError
    from billing_jobs.money import MoneyError

    with ledger() as engine:
        try:
            return action(engine)
        except (BillingError, MoneyError) as exc:
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(code=2) from None


def _day(iso: str | None) -> str:
    return iso[:10] if iso else "–"


# -- catalog and plans --------------------------------------------------------------------
@catalog_app.command("load")
def catalog_load(
    path: Annotated[
        str | None, typer.Argument(help="Catalog YAML (default: the demo catalog).")
    ] = None,
    at: AtOption = None,
    as_json: JsonOption = False,
) -> None:
    """Load a catalog YAML into the ledger (a price change becomes a new version)."""
    from pathlib import Path

    from billing_jobs.catalog import DEMO_CATALOG, load_catalog

    now = parse_instant(at)
    if path is not None:
        try:
            readable = Path(path).is_file()
        except OSError:  # a name too long for the file system, say
            readable = False
        if not readable:
            raise typer.BadParameter(f"{path[:200]!r} is not a readable file", param_hint="PATH")
    result = run_domain(lambda e: load_catalog(e, path or DEMO_CATALOG, now=now)).to_dict()

    def render(r: dict[str, Any]) -> None:
        typer.echo(f"new plan versions: {', '.join(r['new_plan_versions']) or 'none'}")
        typer.echo(f"new products: {', '.join(r['new_product_versions']) or 'none'}")
        typer.echo(f"new coupons: {', '.join(r['new_coupons']) or 'none'}")
        typer.echo(f"unchanged: {r['unchanged']}")

    emit(result, as_json, "catalog loaded", render)


def _price_text(plan: dict[str, Any]) -> str:
    parts = []
    for p in plan["prices"]:
        if p["unit_amount_minor"] is not None:
            parts.append(money(p["unit_amount_minor"], p["currency"]))
        elif p["tiers"]:
            first = p["tiers"][0]
            parts.append(
                f"{money(first['unit_minor'], p['currency'])}/unit ({plan['pricing_model']})"
            )
    return " | ".join(parts)


@plans_app.command("list")
def plans_list(
    all_versions: Annotated[
        bool, typer.Option("--all-versions", help="Every version, not only the current ones.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """The plans customers can subscribe to, with their prices per currency."""
    from billing_jobs.catalog.listing import list_plans

    plans = run_domain(lambda e: list_plans(e, all_versions=all_versions))

    def render(rows: list[dict[str, Any]]) -> None:
        if not rows:
            typer.echo("no plans: load a catalog with `paysight catalog load`")
            return
        table(
            [
                (
                    p["code"],
                    p["version"],
                    p["name"],
                    f"{p['interval_count']} {p['interval']}",
                    "add-on" if p["addon"] else "base",
                    p["trial_days"] or "–",
                    _price_text(p),
                )
                for p in rows
            ],
            ["code", "v", "name", "every", "kind", "trial days", "price"],
        )

    emit(plans, as_json, render=render)


# -- customers ----------------------------------------------------------------------------
NameOption = Annotated[str | None, typer.Option("--name", help="Legal name.")]
EmailOption = Annotated[str | None, typer.Option("--email", help="Where documents are mailed.")]
GstinOption = Annotated[str | None, typer.Option("--gstin", help="15-character GSTIN.")]
StateOption = Annotated[
    str | None, typer.Option("--state-code", help="GST state code of the address, e.g. 29.")
]
TaxStatusOption = Annotated[str | None, typer.Option("--tax-status", help="regular, sez, export.")]
LocaleOption = Annotated[
    str | None, typer.Option("--locale", help="Document language: en_IN, hi_IN or mr_IN.")
]
AddressOption = Annotated[str | None, typer.Option("--address-line", help="Street address.")]
CityOption = Annotated[str | None, typer.Option("--city")]
PostalOption = Annotated[str | None, typer.Option("--postal-code", help="PIN code.")]
CountryOption = Annotated[str | None, typer.Option("--country", help="ISO country, e.g. IN.")]


def _customer_fields(**raw: str | None) -> dict[str, Any]:
    """Options of `customers create/update` parsed one kind at a time (None: not given)."""
    return {
        "name": parse_name(raw["name"]),
        "email": parse_email(raw["email"]),
        "gstin": parse_gstin(raw["gstin"]),
        "state_code": parse_state_code(raw["state_code"]),
        "tax_status": parse_text(raw["tax_status"], "--tax-status", max_length=10),
        "locale": parse_text(raw["locale"], "--locale", max_length=16),
        "address_line": parse_text(raw["address_line"], "--address-line", max_length=400),
        "city": parse_text(raw["city"], "--city", max_length=100),
        "postal_code": parse_postal_code(raw["postal_code"]),
        "country": parse_country(raw["country"]),
    }


def _render_customer(c: dict[str, Any]) -> None:
    address = ", ".join(x for x in (c["address_line"], c["city"], c["postal_code"]) if x)
    typer.echo(f"customer {c['id']}: {c['name']}")
    typer.echo(f"  email          {c['email'] or '–'}")
    typer.echo(f"  address        {address or '–'} ({c['country']})")
    typer.echo(f"  state code     {c['state_code']}   GSTIN {c['gstin'] or 'unregistered'}"
               f"   tax status {c['tax_status']}")  # fmt: skip
    typer.echo(f"  currency       {c['currency']}   locale {c['locale']}")
    typer.echo(f"  credit balance {money(c['credit_balance_minor'], c['currency'])}")


@customers_app.command("create")
def customers_create(
    name: Annotated[str, typer.Option(help="Legal name.")],
    state_code: Annotated[
        str, typer.Option(help="GST state code of the billing address, e.g. 29.")
    ],
    currency: Annotated[str, typer.Option(help="ISO currency, e.g. INR.")] = "INR",
    email: EmailOption = None,
    gstin: GstinOption = None,
    tax_status: Annotated[str, typer.Option(help="regular, sez or export.")] = "regular",
    locale: Annotated[str, typer.Option(help="en_IN, hi_IN or mr_IN.")] = "en_IN",
    address_line: AddressOption = None,
    city: CityOption = None,
    postal_code: PostalOption = None,
    country: Annotated[str, typer.Option(help="ISO country, e.g. IN.")] = "IN",
    at: AtOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a customer (address printed on every tax document)."""
    from billing_jobs.customers import create_customer

    now = parse_instant(at)
    fields = _customer_fields(
        name=name, email=email, gstin=gstin or None, state_code=state_code,
        tax_status=tax_status, locale=locale, address_line=address_line, city=city,
        postal_code=postal_code, country=country,
    )  # fmt: skip
    fields = {k: v for k, v in fields.items() if v is not None}
    out = run_domain(lambda e: create_customer(e, currency=currency, now=now, **fields))
    emit(out, as_json, "customer created", _render_customer)


@customers_app.command("update")
def customers_update(
    customer_id: IdArg,
    name: NameOption = None,
    email: EmailOption = None,
    gstin: Annotated[str | None, typer.Option(help='GSTIN ("" removes it).')] = None,
    state_code: StateOption = None,
    tax_status: TaxStatusOption = None,
    locale: LocaleOption = None,
    address_line: AddressOption = None,
    city: CityOption = None,
    postal_code: PostalOption = None,
    country: CountryOption = None,
    at: AtOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change a customer's details; documents issued from now on print them."""
    from billing_jobs.customers import update_customer

    now = parse_instant(at)
    fields = _customer_fields(
        name=name, email=email, gstin=gstin, state_code=state_code, tax_status=tax_status,
        locale=locale, address_line=address_line, city=city, postal_code=postal_code,
        country=country,
    )  # fmt: skip
    out = run_domain(lambda e: update_customer(e, customer_id, now=now, **fields))
    emit(out, as_json, "customer updated", _render_customer)


@customers_app.command("show")
def customers_show(customer_id: IdArg, as_json: JsonOption = False) -> None:
    """Show a customer, their address and credit balance."""
    from billing_jobs.customers import get_customer

    emit(run_domain(lambda e: get_customer(e, customer_id)), as_json, render=_render_customer)


@customers_app.command("list")
def customers_list(
    search: Annotated[str | None, typer.Option(help="Part of the name or e-mail.")] = None,
    limit: LimitOption = 100,
    as_json: JsonOption = False,
) -> None:
    """Customers with their credit balance."""
    from billing_jobs.customers import list_customers

    limit = parse_count(limit)
    term = parse_text(search, "--search", max_length=100)
    rows = run_domain(lambda e: list_customers(e, limit=limit, search=term))

    def render(cs: list[dict[str, Any]]) -> None:
        if not cs:
            typer.echo("no customers")
            return
        table(
            [(c["id"], c["name"], c["email"] or "–", c["state_code"], c["gstin"] or "–",
              c["currency"], money(c["credit_balance_minor"], c["currency"])) for c in cs],
            ["id", "name", "email", "state", "GSTIN", "currency", "credit balance"],
            right=(0, 6),
        )  # fmt: skip

    emit(rows, as_json, render=render)


# -- subscriptions ------------------------------------------------------------------------
def _items_text(sub: dict[str, Any]) -> str:
    return ", ".join(f"{i['plan']} × {i['quantity']}" for i in sub["items"])


def _invoice_line(inv: dict[str, Any]) -> str:
    cur = inv["currency"]
    return (
        f"invoice {inv['number'] or '(draft)'} (id {inv['id']}, {inv['kind']}, {inv['status']}):"
        f" taxable {money(inv['taxable_minor'], cur)}, total {money(inv['total_minor'], cur)},"
        f" due {money(inv['amount_due_minor'] - inv['amount_paid_minor'], cur)}"
    )


def _note_line(note: dict[str, Any]) -> str:
    cur = note["currency"]
    text = (
        f"credit note {note['number']} (id {note['id']}, {note['reason']}):"
        f" taxable {money(note['taxable_minor'], cur)}, total {money(note['total_minor'], cur)}"
    )
    if note["destination"] == "refund":
        return text + " (refunded)"
    to_balance = note.get("to_balance_minor")
    if to_balance is None:
        return text
    off_due = note["total_minor"] - to_balance
    parts = [f"{money(off_due, cur)} off open invoices"] if off_due else []
    parts += [f"{money(to_balance, cur)} to the credit balance"] if to_balance else []
    return text + f" ({', '.join(parts)})" if parts else text


def _render_subscription(sub: dict[str, Any]) -> None:
    typer.echo(
        f"subscription {sub['id']} (customer {sub['customer_id']}): {sub['status']},"
        f" {_items_text(sub)}"
    )
    if sub["status"] in ("active", "past_due", "trialing"):
        typer.echo(
            f"  period {_day(sub['current_period_start'])} → {_day(sub['current_period_end'])}"
            + (", cancels at period end" if sub.get("cancel_at_period_end") else "")
        )
    for inv in sub.get("invoices_issued", []):
        typer.echo("  " + _invoice_line(inv))
    for key in ("proration_invoice", "credit_note"):
        doc = sub.get(key)
        if doc:
            typer.echo(
                "  " + (_invoice_line(doc) if key == "proration_invoice" else _note_line(doc))
            )


def _issued_since(engine: Any, sub_id: int, after_id: int) -> list[dict[str, Any]]:
    from billing_jobs.invoicing.invoices import list_invoices

    return [i for i in list_invoices(engine, subscription_id=sub_id) if i["id"] > after_id]


def _last_invoice_id(engine: Any) -> int:
    from sqlalchemy import func, select

    from billing_jobs.ledger import schema as s

    with engine.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.max(s.invoices.c.id), 0))).scalar())


@subscriptions_app.command("create")
def subscriptions_create(
    customer_id: Annotated[int, typer.Option("--customer", min=1, max=MAX_ID)],
    plan: Annotated[str, typer.Option(help="Plan code from the catalog.")],
    quantity: Annotated[int, typer.Option(min=1, max=QUANTITY_MAX, help="Seats.")] = 1,
    coupon: Annotated[str | None, typer.Option()] = None,
    trial_days: Annotated[int | None, typer.Option(min=0, max=730)] = None,
    at: AtOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a subscription (invoiced at once unless it starts with a trial)."""
    from billing_jobs.subscriptions.service import create_subscription

    start = parse_instant(at)
    parse_count(quantity, "--quantity", most=1_000_000)

    def action(e: Any) -> dict[str, Any]:
        before = _last_invoice_id(e)
        sub = create_subscription(
            e, customer_id=customer_id, plan=plan, start=start, quantity=quantity,
            coupon=coupon, trial_days=trial_days,
        )  # fmt: skip
        return sub | {"invoices_issued": _issued_since(e, sub["id"], before)}

    emit(run_domain(action), as_json, "subscription created", _render_subscription)


def _change_result(out: dict[str, Any]) -> dict[str, Any]:
    return out["subscription"] | {k: v for k, v in out.items() if k != "subscription"}


@subscriptions_app.command("change")
def subscriptions_change(
    subscription_id: IdArg,
    plan: Annotated[str | None, typer.Option()] = None,
    quantity: Annotated[int | None, typer.Option(min=1, max=QUANTITY_MAX)] = None,
    when: Annotated[str, typer.Option(help="now (prorated) or period_end.")] = "now",
    at: AtOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change plan or quantity, now with per-second proration or at period end."""
    from billing_jobs.subscriptions.changes import change_subscription

    moment = parse_instant(at)
    out = run_domain(
        lambda e: change_subscription(
            e, subscription_id, at=moment, plan=plan, quantity=quantity, when=when
        )
    )
    emit(_change_result(out), as_json, "subscription changed", _render_subscription)


@subscriptions_app.command("pause")
def subscriptions_pause(
    subscription_id: IdArg, at: AtOption = None, as_json: JsonOption = False
) -> None:
    """Pause: no invoices until resumed; unused paid time is credited."""
    from billing_jobs.subscriptions.service import pause_subscription

    moment = parse_instant(at)
    out = run_domain(lambda e: pause_subscription(e, subscription_id, at=moment))
    emit(_change_result(out), as_json, "subscription paused", _render_subscription)


@subscriptions_app.command("resume")
def subscriptions_resume(
    subscription_id: IdArg, at: AtOption = None, as_json: JsonOption = False
) -> None:
    """Resume a paused subscription: a new billing cycle starts (and is invoiced) now."""
    from billing_jobs.subscriptions.service import resume_subscription

    moment = parse_instant(at)

    def action(e: Any) -> dict[str, Any]:
        before = _last_invoice_id(e)
        out = resume_subscription(e, subscription_id, at=moment)
        return out["subscription"] | {"invoices_issued": _issued_since(e, subscription_id, before)}

    emit(run_domain(action), as_json, "subscription resumed", _render_subscription)


@subscriptions_app.command("cancel")
def subscriptions_cancel(
    subscription_id: IdArg,
    at_period_end: Annotated[bool, typer.Option("--at-period-end")] = False,
    at: AtOption = None,
    as_json: JsonOption = False,
) -> None:
    """Cancel now (unused time credited) or at the end of the period."""
    from billing_jobs.subscriptions.service import cancel_subscription

    moment = parse_instant(at)
    out = run_domain(
        lambda e: cancel_subscription(e, subscription_id, at=moment, at_period_end=at_period_end)
    )
    emit(_change_result(out), as_json, "subscription canceled", _render_subscription)


@subscriptions_app.command("show")
def subscriptions_show(subscription_id: IdArg, as_json: JsonOption = False) -> None:
    """A subscription: items, what each item was charged for the period and whether its
    unused time was credited, its invoices, credit notes and history."""
    from billing_jobs.invoicing.credit_notes import list_credit_notes
    from billing_jobs.invoicing.invoices import list_invoices
    from billing_jobs.subscriptions.charges import charges_of
    from billing_jobs.subscriptions.state import get_subscription

    def action(e: Any) -> dict[str, Any]:
        sub = get_subscription(e, subscription_id)
        invoices = list_invoices(e, subscription_id=subscription_id)
        notes = [n for inv in invoices for n in list_credit_notes(e, invoice_id=inv["id"])]
        with e.connect() as conn:
            charges = charges_of(conn, subscription_id)
        return sub | {"invoices": invoices, "credit_notes": notes, "charges": charges}

    def render(sub: dict[str, Any]) -> None:
        _render_subscription(sub)
        cur = sub["currency"]
        typer.echo("charges (whole-period price actually charged):")
        table(
            [(c["period_start"][:10], c["plan"], c["quantity"], money(c["amount_minor"], cur),
              money(c["discount_minor"], cur), money(c["taxable_minor"], cur),
              c["charged_from"][:19], (c["credited_from"] or "in force")[:19]) for c in sub["charges"]],
            ["period", "plan", "qty", "value", "discount", "taxable", "from", "credited from"],
            right=(3, 4, 5),
        )  # fmt: skip
        typer.echo("invoices:")
        for inv in sub["invoices"]:
            typer.echo("  " + _invoice_line(inv))
        typer.echo("credit notes:" if sub["credit_notes"] else "credit notes: none")
        for note in sub["credit_notes"]:
            typer.echo("  " + _note_line(note))
        typer.echo("history:")
        for ev in sub["events"]:
            typer.echo(f"  {ev['at'][:19]}  {ev['kind']:16} {ev['from_status'] or ''} → "
                       f"{ev['to_status'] or ''}")  # fmt: skip

    emit(run_domain(action), as_json, render=render)


@subscriptions_app.command("list")
def subscriptions_list(
    customer_id: CustomerOption = None,
    status: Annotated[str | None, typer.Option(help="active, past_due, paused, ...")] = None,
    limit: LimitOption = 100,
    as_json: JsonOption = False,
) -> None:
    """Subscriptions with their status, items and current period."""
    from billing_jobs.subscriptions.state import list_subscriptions

    limit = parse_count(limit)
    rows = run_domain(
        lambda e: list_subscriptions(e, customer_id=customer_id, status=status, limit=limit)
    )

    def render(subs: list[dict[str, Any]]) -> None:
        if not subs:
            typer.echo("no subscriptions")
            return
        table(
            [(x["id"], x["customer_id"], x["status"], _items_text(x),
              _day(x["current_period_start"]), _day(x["current_period_end"])) for x in subs],
            ["id", "customer", "status", "items", "period start", "period end"],
            right=(0, 1),
        )  # fmt: skip

    emit(rows, as_json, render=render)


# -- billing run --------------------------------------------------------------------------
@billing_app.command("run")
def billing_run(
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Bill what is due at this instant.")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=100_000)] = 1000,
    as_json: JsonOption = False,
) -> None:
    """Bill every subscription due at --as-of (idempotent: a re-run creates nothing twice)."""
    from billing_jobs.invoicing.invoices import get_invoice
    from billing_jobs.subscriptions.billing_run import run_billing

    moment = parse_instant(as_of, "--as-of")

    def action(e: Any) -> dict[str, Any]:
        result = run_billing(e, moment, batch_size=batch_size).to_dict()
        ids = result.pop("invoice_ids")
        result["invoices"] = [
            {k: v for k, v in get_invoice(e, i).items() if k != "lines"} for i in ids[:1000]
        ]
        return result

    def render(r: dict[str, Any]) -> None:
        typer.echo(f"subscriptions processed {r['subscriptions_processed']}, invoices created "
                   f"{r['invoices_created']}, events {r['events_recorded']}")  # fmt: skip
        for inv in r["invoices"]:
            typer.echo("  " + _invoice_line(inv))

    emit(run_domain(action), as_json, "billing run", render)


def register(app: typer.Typer) -> None:
    app.add_typer(catalog_app, name="catalog")
    app.add_typer(plans_app, name="plans")
    app.add_typer(customers_app, name="customers")
    app.add_typer(subscriptions_app, name="subscriptions")
    app.add_typer(billing_app, name="billing")
