"""Operator commands: customers, subscriptions, invoices and billing runs on the ledger.

Every command takes ``--at`` (default: now) because domain functions take time as an argument,
prints a human table by default and JSON with ``--json``. Domain errors become one clear line
on stderr and exit code 2; nothing is written when a command is refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from orchestration.lib.env import SettingsError, load_settings

AtOption = Annotated[
    str | None,
    typer.Option("--at", help="Instant of the operation (ISO 8601; default: now)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
# Ids are BIGINT in the ledger; quantities and trial days are bounded by the domain.
MAX_ID = 2**63 - 1
IdArg = Annotated[int, typer.Argument(min=1, max=MAX_ID)]
QUANTITY_MAX = 1_000_000

customers_app = typer.Typer(help="Billing customers.", no_args_is_help=True)
subscriptions_app = typer.Typer(help="Subscription lifecycle.", no_args_is_help=True)
invoices_app = typer.Typer(help="Invoices: show, preview, void, pdf.", no_args_is_help=True)
billing_app = typer.Typer(help="The billing run.", no_args_is_help=True)
catalog_app = typer.Typer(help="The product catalog.", no_args_is_help=True)


def parse_instant(value: str | None, option: str = "--at") -> datetime:
    """ISO 8601 with a UTC offset -> aware datetime (`billing_jobs.inputs.instant`: naive times
    are refused, the range is 2000..2100); None -> now."""
    from billing_jobs.inputs import InputError, instant

    if value is None:
        return datetime.now(UTC)
    try:
        return instant(value, option)
    except InputError as exc:
        raise typer.BadParameter(str(exc).removeprefix(f"{option}: "), param_hint=option) from None


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


def emit(payload: Any, as_json: bool, title: str = "") -> None:
    if as_json:
        typer.echo(json.dumps(payload, indent=2, sort_keys=True, default=str))
        return
    if title:
        typer.secho(title, bold=True)
    _render(payload, indent=0)


def _render(value: Any, indent: int) -> None:
    pad = "  " * indent
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                typer.echo(f"{pad}{key}:")
                _render(item, indent + 1)
            else:
                typer.echo(f"{pad}{key:28} {item}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            typer.echo(f"{pad}- [{i}]")
            _render(item, indent + 1)
    else:
        typer.echo(f"{pad}{value}")


# -- catalog ------------------------------------------------------------------------------
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
    result = run_domain(lambda e: load_catalog(e, path or DEMO_CATALOG, now=now))
    emit(_plain(result), as_json, "catalog loaded")


# -- customers ----------------------------------------------------------------------------
@customers_app.command("create")
def customers_create(
    name: Annotated[str, typer.Option(help="Legal name.")],
    state_code: Annotated[
        str, typer.Option(help="GST state code of the billing address, e.g. 29.")
    ],
    currency: Annotated[str, typer.Option(help="ISO currency, e.g. INR.")] = "INR",
    email: Annotated[str | None, typer.Option()] = None,
    gstin: Annotated[str | None, typer.Option(help="15-character GSTIN (validated).")] = None,
    tax_status: Annotated[str, typer.Option(help="regular, sez or export.")] = "regular",
    locale: Annotated[str, typer.Option()] = "en_IN",
    at: AtOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a customer."""
    from billing_jobs.customers import create_customer

    now = parse_instant(at)
    out = run_domain(
        lambda e: create_customer(
            e,
            name=name,
            state_code=state_code,
            currency=currency,
            now=now,
            email=email,
            gstin=gstin,
            tax_status=tax_status,
            locale=locale,
        )
    )
    emit(out, as_json, "customer created")


@customers_app.command("show")
def customers_show(customer_id: IdArg, as_json: JsonOption = False) -> None:
    """Show a customer and their credit balance."""
    from billing_jobs.customers import get_customer

    emit(run_domain(lambda e: get_customer(e, customer_id)), as_json)


# -- subscriptions ------------------------------------------------------------------------
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
    out = run_domain(
        lambda e: create_subscription(
            e,
            customer_id=customer_id,
            plan=plan,
            start=start,
            quantity=quantity,
            coupon=coupon,
            trial_days=trial_days,
        )
    )
    emit(out, as_json, "subscription created")


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
    emit(out, as_json, "subscription changed")


@subscriptions_app.command("pause")
def subscriptions_pause(
    subscription_id: IdArg, at: AtOption = None, as_json: JsonOption = False
) -> None:
    """Pause: no invoices until resumed."""
    from billing_jobs.subscriptions.service import pause_subscription

    moment = parse_instant(at)
    emit(run_domain(lambda e: pause_subscription(e, subscription_id, at=moment)), as_json)


@subscriptions_app.command("resume")
def subscriptions_resume(
    subscription_id: IdArg, at: AtOption = None, as_json: JsonOption = False
) -> None:
    """Resume a paused subscription."""
    from billing_jobs.subscriptions.service import resume_subscription

    moment = parse_instant(at)
    emit(run_domain(lambda e: resume_subscription(e, subscription_id, at=moment)), as_json)


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
    emit(
        run_domain(
            lambda e: cancel_subscription(
                e, subscription_id, at=moment, at_period_end=at_period_end
            )
        ),
        as_json,
    )


@subscriptions_app.command("show")
def subscriptions_show(subscription_id: IdArg, as_json: JsonOption = False) -> None:
    """Show a subscription with its items and history."""
    from billing_jobs.subscriptions.state import get_subscription

    emit(run_domain(lambda e: get_subscription(e, subscription_id)), as_json)


# -- invoices -----------------------------------------------------------------------------
@invoices_app.command("show")
def invoices_show(invoice_id: IdArg, as_json: JsonOption = False) -> None:
    """Show an invoice with its lines and tax."""
    from billing_jobs.invoicing.invoices import get_invoice

    emit(run_domain(lambda e: get_invoice(e, invoice_id)), as_json)


@invoices_app.command("preview")
def invoices_preview(
    subscription_id: IdArg,
    plan: Annotated[str | None, typer.Option(help="Hypothetical new plan.")] = None,
    quantity: Annotated[
        int | None, typer.Option(min=1, max=QUANTITY_MAX, help="Hypothetical new quantity.")
    ] = None,
    at: AtOption = None,
    as_json: JsonOption = False,
) -> None:
    """The upcoming invoice, with prorations for a hypothetical change at --at (nothing is saved)."""
    from billing_jobs.subscriptions.preview import preview_invoice

    moment = parse_instant(at)
    change = {k: v for k, v in {"plan": plan, "quantity": quantity}.items() if v is not None}
    emit(
        run_domain(lambda e: preview_invoice(e, subscription_id, at=moment, change=change or None)),
        as_json,
        "upcoming invoice (preview)",
    )


@invoices_app.command("void")
def invoices_void(invoice_id: IdArg, at: AtOption = None, as_json: JsonOption = False) -> None:
    """Void an open invoice (its number stays used)."""
    from billing_jobs.invoicing.invoices import void_invoice

    moment = parse_instant(at)
    emit(run_domain(lambda e: void_invoice(e, invoice_id, at=moment)), as_json)


@invoices_app.command("pdf")
def invoices_pdf(
    number: Annotated[str, typer.Argument(help="Invoice number, e.g. INV/2526/000001.")],
    lang: Annotated[str, typer.Option(help="en, hi or mr.")] = "en",
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="Where to write the PDF.")
    ] = None,
) -> None:
    """Render an invoice's PDF (Rule 46 fields) in a language, and print where it is."""
    from pathlib import Path

    from sqlalchemy import select

    from billing_jobs.invoicing.documents.from_ledger import DocumentSourceError, invoice_document
    from billing_jobs.invoicing.documents.render import document_path, render_pdf
    from billing_jobs.ledger import schema as s

    if lang not in {"en", "hi", "mr"}:
        raise typer.BadParameter(
            f"unknown language {lang!r}; choose en, hi or mr", param_hint="--lang"
        )

    def action(engine):
        with engine.connect() as conn:
            row = conn.execute(select(s.invoices.c.id).where(s.invoices.c.number == number)).first()
        if row is None:
            raise DocumentSourceError(f"no invoice numbered {number!r}")
        return invoice_document(engine, row.id)

    try:
        doc = run_domain(action)
    except DocumentSourceError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from None
    pdf = render_pdf(doc, lang=lang)
    target = (
        Path(output)
        if output
        else document_path(load_settings().documents_dir, doc).with_suffix(f".{lang}.pdf")
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(pdf)
    typer.echo(str(target))


@invoices_app.command("run")
def invoices_run(
    limit: Annotated[int | None, typer.Option(min=1, max=10_000_000)] = None,
    no_mail: Annotated[bool, typer.Option("--no-mail")] = False,
    as_of: Annotated[str | None, typer.Option("--as-of")] = None,
    as_json: JsonOption = False,
) -> None:
    """Render, store and queue (and send, when PAYSIGHT_SMTP_URL is set) new invoice documents."""
    from billing_jobs.invoicing.documents.from_ledger import run_invoice_documents
    from billing_jobs.invoicing.mail import SmtpSettings, send_due

    settings = load_settings()
    now = parse_instant(as_of, "--as-of")

    def action(engine):
        report = run_invoice_documents(
            engine, settings.documents_dir, now, limit=limit, mail=not no_mail
        )
        sent = 0
        if not no_mail and settings.smtp_url is not None:
            smtp = SmtpSettings.from_url(settings.smtp_url.get_secret_value())
            sent = len(send_due(engine, now, smtp).sent)
        return {
            "rendered": report.rendered,
            "queued": report.queued,
            "sent": sent,
            "errors": report.errors,
        }

    emit(run_domain(action), as_json, "invoice run")


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
    from billing_jobs.subscriptions.billing_run import run_billing

    moment = parse_instant(as_of, "--as-of")
    result = run_domain(lambda e: run_billing(e, moment, batch_size=batch_size))
    payload = result.to_dict()
    payload.pop("invoice_ids", None)
    emit(payload, as_json, "billing run")


def _plain(obj: Any) -> Any:
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if hasattr(obj, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(obj)
    return obj


def register(app: typer.Typer) -> None:
    app.add_typer(catalog_app, name="catalog")
    app.add_typer(customers_app, name="customers")
    app.add_typer(subscriptions_app, name="subscriptions")
    app.add_typer(invoices_app, name="invoices")
    app.add_typer(billing_app, name="billing")
