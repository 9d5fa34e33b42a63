"""The `paysight` command line: demo, simulation, webhooks and operator commands.

Human tables by default, ``--json`` for machines. Heavy imports (Dagster, dbt, MLflow) happen
inside the commands that need them so that `paysight --help` is instant.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from orchestration.cli_context import ensure_dagster_home as _ensure_dagster_home
from orchestration.cli_context import settings_or_exit as _settings

app = typer.Typer(
    name="paysight",
    help="Payments, billing and revenue analytics for subscription businesses.",
    no_args_is_help=True,
    add_completion=False,
)


def _emit(payload: dict[str, Any], as_json: bool, render) -> None:
    if as_json:
        typer.echo(json.dumps(payload, indent=2, sort_keys=True, default=str))
    else:
        render(payload)


@app.command()
def demo(
    customers: Annotated[
        int, typer.Option(min=1, max=200_000, help="Simulated customers.")
    ] = 5_000,
    months: Annotated[int, typer.Option(min=2, max=36, help="Months of history.")] = 24,
    seed: Annotated[int, typer.Option(help="Seed of the simulated world.")] = 42,
    start: Annotated[str, typer.Option(help="First day of the simulated history.")] = "2025-01-01",
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Build the demo world, materialize every asset and print a summary."""
    from orchestration.demo import render_summary, run_demo

    settings = _settings()
    _ensure_dagster_home()
    from simulation import SimulationError

    try:
        summary = run_demo(settings, customers=customers, months=months, seed=seed, start=start)
    except (ValueError, SimulationError) as exc:
        typer.secho(f"paysight demo: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from None
    _emit(summary, as_json, render_summary)
    if not summary["success"]:
        raise typer.Exit(code=1)


@app.command()
def settings(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show the effective settings (secrets masked)."""
    s = _settings()
    data = json.loads(s.model_dump_json())
    _emit(data, as_json, lambda d: [typer.echo(f"{k:24} {v}") for k, v in sorted(d.items())])


@app.command()
def simulate(
    customers: Annotated[int, typer.Option(min=1, max=200_000, help="Customers.")] = 5_000,
    months: Annotated[int, typer.Option(min=1, max=60, help="Months to simulate.")] = 24,
    seed: Annotated[int, typer.Option(help="Seed of the world.")] = 42,
    start: Annotated[str, typer.Option(help="First day (YYYY-MM-DD).")] = "2025-01-01",
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Replace an existing world (ledger, gateway, truth)."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Build only the simulated business: ledger, gateway state, bank files and ground truth."""
    from simulation import SimulationError
    from simulation import simulate as run_simulation

    s = _settings()
    if overwrite:
        for old in (s.landing_dir / "bank").glob("settlement_*.csv"):
            old.unlink()
    try:
        result = run_simulation(
            s.ledger_url,
            s.data_dir,
            customers=customers,
            months=months,
            seed=seed,
            start=start,
            landing_dir=s.landing_dir,
            warehouse_path=s.warehouse_path,
            overwrite=overwrite,
        )
    except SimulationError as exc:
        message = str(exc).replace("pass overwrite=True", "pass --overwrite")
        typer.secho(f"paysight simulate: {message}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from None
    payload = result.to_dict()
    _emit(
        payload,
        as_json,
        lambda d: (
            [typer.echo(f"{k:20} {v}") for k, v in sorted(d.items()) if k != "counts"]
            + [typer.echo(f"  {k:18} {v:,}") for k, v in sorted(d.get("counts", {}).items())]
        ),
    )


webhooks_app = typer.Typer(help="The webhook receiver.", no_args_is_help=True)
app.add_typer(webhooks_app, name="webhooks")


@webhooks_app.command("serve")
def webhooks_serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8787,
    rate_per_s: Annotated[float | None, typer.Option(help="Per-source rate limit.")] = None,
    log_level: Annotated[str, typer.Option()] = "info",
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="HTTP worker processes (>1 needs a fixed port).")
    ] = 1,
) -> None:
    """Receive gateway webhooks; each is durably landed before a 2xx."""
    from ingestion.webhooks.app import serve
    from ingestion.webhooks.config import RateLimit, WebhookConfig, WebhookConfigError

    s = _settings()
    secrets = {
        source: [part.strip() for part in secret.get_secret_value().split(",") if part.strip()]
        for source, secret in {
            "stripe": s.stripe_webhook_secret,
            "razorpay": s.razorpay_webhook_secret,
            "simulated": s.simulated_webhook_secret,
        }.items()
        if secret is not None and secret.get_secret_value().strip()
    }
    limits = (
        {src: RateLimit(rate_per_s, max(1, int(rate_per_s))) for src in secrets}
        if rate_per_s
        else {}
    )
    try:
        config = WebhookConfig(landing_dir=s.landing_dir, secrets=secrets, rate_limits=limits)
    except WebhookConfigError as exc:
        typer.secho(f"paysight webhooks: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from None
    typer.echo(
        f"listening on http://{host}:{port}; sources: {', '.join(sorted(secrets))}; "
        f"landing zone {s.landing_dir}"
    )
    try:
        serve(host, port, config, log_level=log_level, workers=workers)
    except WebhookConfigError as exc:
        typer.secho(f"paysight webhooks: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from None


from orchestration import cli_billing, cli_invoices, cli_payments, cli_reports  # noqa: E402

cli_billing.register(app)
cli_invoices.register(app)
cli_payments.register(app)
cli_reports.register(app)


def main() -> None:  # pragma: no cover - console entry
    app(prog_name="paysight")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
