"""`paysight customers erase ID`: a customer's erasure request (billing_jobs.retention.erasure),
confirmed before anything changes; what was erased is recorded, never the old values."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from orchestration.cli_billing import (
    AtOption,
    IdArg,
    JsonOption,
    customers_app,
    emit,
    parse_instant,
    run_domain,
)

YesOption = Annotated[
    bool, typer.Option("--yes", help="Erase without asking (scripts); it cannot be undone.")
]


def _render(out: dict[str, Any]) -> None:
    cid = out["customer_id"]
    if out["already_erased"]:
        typer.echo(f"customer {cid} was already erased at {out['erased_at']}; nothing changed")
    else:
        typer.echo(f"customer {cid} erased at {out['erased_at']}: {len(out['fields'])} fields")
        for field in out["fields"]:
            typer.echo(f"  {field}")
    typer.echo("kept for GST: GSTIN, state, country, tax status, invoices and credit notes with "
               "their issued documents (until their retention term)")  # fmt: skip
    for g in out["gateway_customers"]:
        typer.echo(f"the gateway keeps its own copy: delete {g['gateway']} customer "
                   f"{g['gateway_customer_id']} there; the warehouse scrubs it on every refresh")  # fmt: skip
    typer.echo("the warehouse drops the old details at its next refresh (ingestion + dbt)")


def customers_erase(
    customer_id: IdArg, yes: YesOption = False, at: AtOption = None, as_json: JsonOption = False
) -> None:
    """Erase a customer's personal data (name, e-mail, address, payment-method labels, mails);
    what tax law needs stays. Refused while a subscription is live. Idempotent."""
    from billing_jobs.retention.erasure import erase_customer

    now = parse_instant(at)
    if not yes:
        try:
            confirmed = typer.confirm(
                f"Erase customer {customer_id}'s personal data? This cannot be undone"
            )
        except typer.Abort:
            confirmed = False
        if not confirmed:
            typer.secho("error: erasure not confirmed (pass --yes to skip the question); "
                        "nothing changed", fg=typer.colors.RED, err=True)  # fmt: skip
            raise typer.Exit(code=2)
    out = run_domain(lambda e: erase_customer(e, customer_id, now=now))
    emit(out, as_json, render=_render)


def register(app: typer.Typer) -> None:
    """`erase` joins the `customers` group (which cli_billing adds to `app`)."""
    del app
    customers_app.command("erase")(customers_erase)
