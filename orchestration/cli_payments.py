"""Operator commands for payments: `paysight payment-methods {add,list,remove,set-default}` and
`paysight refunds create`. Bad input exits with code 2 and one clear line; nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

import typer

from orchestration.cli_billing import (
    MAX_ID,
    AtOption,
    IdArg,
    JsonOption,
    emit,
    ledger,
    parse_instant,
)

methods_app = typer.Typer(help="Customers' payment methods (gateway tokens).", no_args_is_help=True)
payments_app = typer.Typer(help="Charging invoices.", no_args_is_help=True)
refunds_app = typer.Typer(help="Refunds of captured payments.", no_args_is_help=True)
retries_app = typer.Typer(help="Retries of failed payments.", no_args_is_help=True)
dunning_app = typer.Typer(help="Dunning of unpaid invoices.", no_args_is_help=True)
RETRY_POLICIES = ("smart", "exponential", "fixed")
GatewayOption = Annotated[
    str | None,
    typer.Option("--gateway", help="Gateway adapter (default: the first active one)."),
]


def run_payments(action: Callable[[Any], Any]) -> Any:
    """Run against the ledger; domain, payment-method and gateway errors exit with code 2."""
    from billing_jobs.errors import BillingError
    from billing_jobs.money import MoneyError
    from billing_jobs.payments.gateway import GatewayError
    from billing_jobs.payments.method_rules import PaymentMethodError

    with ledger() as engine:
        try:
            return action(engine)
        except (BillingError, MoneyError, PaymentMethodError, GatewayError) as exc:
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(code=2) from None


def _gateway(name: str | None, at: datetime) -> Any:
    from billing_jobs.payments.gateway import GatewayError
    from orchestration.lib.gateways import gateway_from_settings

    try:
        return gateway_from_settings(name, clock=lambda: at)
    except GatewayError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from None


@methods_app.command("add")
def methods_add(
    customer_id: IdArg,
    kind: Annotated[str, typer.Option(help="card, upi, netbanking, wallet, upi_mandate, ...")],
    token: Annotated[str, typer.Option(help="The gateway token (never a card number).")],
    last4: Annotated[str | None, typer.Option(help="Card: last four digits.")] = None,
    exp_month: Annotated[
        int | None, typer.Option(min=1, max=12, help="Card: expiry month.")
    ] = None,
    exp_year: Annotated[
        int | None, typer.Option(min=2000, max=2099, help="Card: expiry year.")
    ] = None,
    brand: Annotated[str | None, typer.Option(help="Card brand (visa, rupay...).")] = None,
    vpa: Annotated[str | None, typer.Option(help="UPI: the VPA, name@handle.")] = None,
    bank: Annotated[str | None, typer.Option(help="Net banking: bank code.")] = None,
    wallet: Annotated[str | None, typer.Option(help="Wallet name.")] = None,
    max_amount_minor: Annotated[
        int | None,
        typer.Option(min=1, max=MAX_ID, help="Mandate: registered ceiling in minor units."),
    ] = None,
    default: Annotated[
        bool | None, typer.Option("--default/--no-default", help="Make it the default.")
    ] = None,
    gateway: GatewayOption = None,
    at: AtOption = None,
    as_json: JsonOption = False,
) -> None:
    """Validate a payment method, attach it at the gateway and store its token."""
    from billing_jobs.payments.payment_methods import add_payment_method

    now = parse_instant(at)
    fields = {"kind": kind, "token": token, "last4": last4, "exp_month": exp_month,
              "exp_year": exp_year, "brand": brand, "vpa": vpa, "bank": bank, "wallet": wallet,
              "max_amount_minor": max_amount_minor}  # fmt: skip
    data = {k: v for k, v in fields.items() if v is not None}
    gw = _gateway(gateway, now)
    out = run_payments(
        lambda engine: add_payment_method(engine, gw, customer_id, data, now, make_default=default)
    )

    def render(m: dict[str, Any]) -> None:
        default = ", the default" if m["is_default"] else ""
        typer.echo(f"payment method {m['id']} added for customer {m['customer_id']}: {m['kind']}"
                   f" {m['label'] or ''} on {m['gateway']}{default} (token {m['token']})")  # fmt: skip

    emit(out, as_json, render=render)


@methods_app.command("list")
def methods_list(customer_id: IdArg, as_json: JsonOption = False) -> None:
    """A customer's current payment methods."""
    from billing_jobs.payments.payment_methods import list_payment_methods

    out = run_payments(lambda engine: list_payment_methods(engine, customer_id))
    if as_json:
        emit(out, True)
        return
    if not out:
        typer.echo(f"customer {customer_id} has no payment methods")
    for m in out:
        star = "*" if m["is_default"] else " "
        typer.echo(f"{star} {m['id']:>5}  {m['kind']:12} {m['label'] or '':40} {m['gateway']}")


@methods_app.command("remove")
def methods_remove(
    customer_id: IdArg,
    method_id: IdArg,
    gateway: GatewayOption = None,
    at: AtOption = None,
    as_json: JsonOption = False,
) -> None:
    """Detach a payment method at the gateway and mark it removed."""
    from billing_jobs.payments.payment_methods import remove_payment_method

    now = parse_instant(at)
    gw = _gateway(gateway, now)
    out = run_payments(
        lambda engine: remove_payment_method(engine, gw, customer_id, method_id, now)
    )
    emit(out, as_json, f"removed payment method {method_id}")


@methods_app.command("set-default")
def methods_set_default(
    customer_id: IdArg, method_id: IdArg, at: AtOption = None, as_json: JsonOption = False
) -> None:
    """Make a payment method the default (failing invoices are retried on it)."""
    from billing_jobs.payments.payment_methods import set_default_payment_method

    now = parse_instant(at)
    out = run_payments(
        lambda engine: set_default_payment_method(engine, customer_id, method_id, now)
    )
    emit(out, as_json, f"default payment method {method_id}")


@refunds_app.command("create")
def refunds_create(
    invoice_or_payment: Annotated[
        str, typer.Argument(help="An invoice id or a gateway payment id.")
    ],
    amount_minor: Annotated[
        int, typer.Option(min=1, max=MAX_ID, help="Refund amount in minor units (paise).")
    ],
    memo: Annotated[str | None, typer.Option(help="Reason shown on the credit note.")] = None,
    gateway: GatewayOption = None,
    at: AtOption = None,
    as_json: JsonOption = False,
) -> None:
    """Refund (part of) a captured payment and issue the credit note."""
    from billing_jobs.payments.refunds import create_refund

    now = parse_instant(at)
    gw = _gateway(gateway, now)
    out = run_payments(
        lambda engine: create_refund(engine, gw, invoice_or_payment, amount_minor, now, memo=memo)
    )
    emit(out, as_json, f"refund {out['gateway_refund_id']}")


def _retry_policy(name: str) -> tuple[Any, str]:
    """The named policy; `smart` scores with `models:/retry_timing@champion` when it is
    registered and otherwise behaves as exponential backoff (the returned note says which)."""
    from billing_jobs.payments.retries import ExponentialPolicy, FixedPolicy

    if name not in RETRY_POLICIES:
        typer.secho(
            f"error: unknown retry policy {name!r}; choose one of {', '.join(RETRY_POLICIES)}",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(code=2)
    if name == "fixed":
        return FixedPolicy(), "fixed"
    if name == "exponential":
        return ExponentialPolicy(), "exponential"
    from orchestration.defs.payments.smart_policy import smart_policy
    from orchestration.lib.env import load_settings
    from orchestration.lib.resources import MlflowResource

    settings = load_settings()
    mlflow = MlflowResource(
        tracking_uri=str(settings.mlflow_tracking_uri),
        artifacts_dir=str(settings.mlflow_artifacts_dir),
    )
    choice = smart_policy(mlflow, settings.timezone)
    return choice.policy, f"smart ({choice.model}: {choice.note})"


@retries_app.command("run")
def retries_run(
    policy: Annotated[str, typer.Option(help="smart, exponential or fixed.")] = "smart",
    gateway: GatewayOption = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Run the retries due at this instant.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Charge every invoice whose next retry is due at --as-of (idempotent per attempt)."""
    from billing_jobs.payments.collection import run_due_retries

    now = parse_instant(as_of, "--as-of")
    chosen, about = _retry_policy(policy)
    gw = _gateway(gateway, now)
    report = run_payments(lambda engine: run_due_retries(engine, gw, now, chosen))
    emit({"policy": about, **report.to_dict()}, as_json, "retries run")


@dunning_app.command("run")
def dunning_run(
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Advance dunning as of this instant.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Advance every open dunning case (reminders, restrict, cancel) as of --as-of."""
    from billing_jobs.payments.dunning_run import run_dunning

    now = parse_instant(as_of, "--as-of")
    report = run_payments(lambda engine: run_dunning(engine, now))
    emit(report, as_json, "dunning run")


def _not_collected(engine: Any, inv_id: int, now: datetime) -> str | None:
    """Why `payments collect` would not charge an invoice (None: it is collectable)."""
    from sqlalchemy import select

    from billing_jobs.ledger import schema as s

    with engine.connect() as conn:
        inv = conn.execute(select(s.invoices).where(s.invoices.c.id == inv_id)).one()
        tried = conn.execute(
            select(s.payment_attempts.c.id).where(s.payment_attempts.c.invoice_id == inv_id)
        ).first()
    if inv.status != "open":
        return f"invoice {inv.number} is {inv.status}"
    if inv.amount_due_minor <= inv.amount_paid_minor:
        return f"invoice {inv.number} has nothing due"
    if inv.issued_at > now:
        return f"invoice {inv.number} is dated {inv.issued_at.isoformat()}, after --at"
    if tried is not None:
        return (
            f"invoice {inv.number} was already charged once; failed charges are retried by "
            "`paysight retries run` on their schedule"
        )
    return None


@payments_app.command("collect")
def payments_collect(
    invoice: Annotated[str, typer.Argument(help="Invoice id or number (INV/2627/000001).")],
    policy: Annotated[str, typer.Option(help="Retry schedule if it fails: smart, ...")] = "smart",
    gateway: GatewayOption = None,
    at: AtOption = None,
    as_json: JsonOption = False,
) -> None:
    """Charge one open invoice now on the customer's default payment method: the same code
    path as the payments collection job (a failure schedules its retries and starts dunning)."""
    from billing_jobs.invoicing.invoices import find_invoice_id, get_invoice
    from billing_jobs.payments.collection import collect_open_invoices

    now = parse_instant(at)
    chosen, about = _retry_policy(policy)
    gw = _gateway(gateway, now)

    def action(engine: Any) -> dict[str, Any]:
        inv_id = find_invoice_id(engine, invoice)
        why = _not_collected(engine, inv_id, now)
        if why is not None:
            from billing_jobs.errors import InvalidTransitionError

            raise InvalidTransitionError(f"nothing to collect: {why}")
        report = collect_open_invoices(engine, gw, gw.name, now, chosen, invoice_ids=[inv_id])
        inv = get_invoice(engine, inv_id)
        outcome = (
            "paid" if inv_id in report.paid
            else "failed" if inv_id in report.failed
            else "pending" if inv_id in report.pending
            else "skipped"
        )  # fmt: skip
        return {"invoice": inv["number"], "invoice_id": inv_id, "outcome": outcome,
                "reason": report.skipped.get(inv_id), "retry_at": report.retries_scheduled.get(inv_id),
                "policy": about, "gateway": gw.name, "currency": inv["currency"],
                "charged_minor": report.collected_minor.get(inv["currency"], 0),
                "amount_due_minor": inv["amount_due_minor"] - inv["amount_paid_minor"],
                "status": inv["status"]}  # fmt: skip

    def render(r: dict[str, Any]) -> None:
        from orchestration.cli_output import money

        line = f"invoice {r['invoice']}: {r['outcome']} on {r['gateway']}"
        if r["outcome"] == "paid":
            line += f", charged {money(r['charged_minor'], r['currency'])}"
        elif r["outcome"] == "failed":
            line += f", next retry {r['retry_at'] or 'none (hard decline)'} ({r['policy']})"
        elif r["reason"]:
            line += f": {r['reason']}"
        typer.echo(line)
        typer.echo(
            f"  status {r['status']}, still due {money(r['amount_due_minor'], r['currency'])}"
        )

    out = run_payments(action)
    emit(out, as_json, render=render)
    if out["outcome"] == "skipped":
        raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    app.add_typer(payments_app, name="payments")
    app.add_typer(methods_app, name="payment-methods")
    app.add_typer(refunds_app, name="refunds")
    app.add_typer(retries_app, name="retries")
    app.add_typer(dunning_app, name="dunning")
