"""The `paysight` command line: demo, simulation, webhooks and operator commands.

Human tables by default, ``--json`` for machines. Heavy imports (Dagster, dbt, MLflow) happen
inside the commands that need them so that `paysight --help` is instant.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from billing_jobs import storage
from orchestration.cli_context import ensure_dagster_home as _ensure_dagster_home
from orchestration.cli_context import settings_or_exit as _settings
from orchestration.lib.env import (
    Settings,
    ensure_simulated_webhook_secret,
)


class EdgeGroup(TyperGroup):
    """The root command: every argument is checked before any command sees it. Undecodable
    bytes (invalid UTF-8 from the terminal), control characters and escape sequences, and
    arguments longer than any field are refused with exit code 2 and the argument named;
    commands then validate their own values with `billing_jobs.inputs`."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        from billing_jobs.inputs import InputError, text

        for i, arg in enumerate(args):
            label = args[i - 1] if i and args[i - 1].startswith("-") else f"argument {i + 1}"
            try:
                text(arg, label, max_len=MAX_ARG_CHARS, allow_empty=True)
            except InputError as exc:
                message = str(exc).removeprefix(f"{label}: ")
                raise typer.BadParameter(message, ctx=ctx, param_hint=label) from None
        return super().parse_args(ctx, args)


MAX_ARG_CHARS = 4096  # longer than any field (names 200, addresses 400)

app = typer.Typer(
    cls=EdgeGroup,
    name="paysight",
    help="Payments, billing and revenue analytics for subscription businesses.",
    no_args_is_help=True,
    add_completion=False,
)


def _start_day(value: str) -> str:
    """`--start`: a date in range (billing_jobs.inputs.day), refused with exit code 2."""
    from billing_jobs.inputs import InputError, day

    try:
        return day(value, "--start").isoformat()
    except InputError as exc:
        raise typer.BadParameter(str(exc).removeprefix("--start: "), param_hint="--start") from None


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
    seed: Annotated[
        int, typer.Option(min=0, max=2**32 - 1, help="Seed of the simulated world.")
    ] = 42,
    start: Annotated[str, typer.Option(help="First day of the simulated history.")] = "2025-01-01",
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Build the demo world, materialize every asset and print a summary."""
    from orchestration.demo import render_summary, run_demo

    start = _start_day(start)
    settings = _settings()
    _ensure_dagster_home()
    ensure_simulated_webhook_secret(settings)  # the demo's own, never a shipped default
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
    seed: Annotated[int, typer.Option(min=0, max=2**32 - 1, help="Seed of the world.")] = 42,
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

    start = _start_day(start)
    s = _settings()
    ensure_simulated_webhook_secret(s)  # the simulation's own, never a shipped default
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


def _webhook_config(s: Settings, rate_per_s: float | None) -> Any:
    """The receiver's configuration from settings: the enabled sources and their secrets
    (refused, naming the variable, when one is missing), rate limits and client limits."""
    from ingestion.webhooks.config import (
        ReceiverLimits,
        WebhookConfig,
        enabled_secrets,
        rate_limits,
    )

    secrets = enabled_secrets(s.enabled_webhook_sources, s.webhook_secret_values())
    limits, invalid = rate_limits(
        list(secrets), rate_per_s or s.webhook_rate_per_s, s.webhook_burst,
        s.webhook_invalid_rate_per_s,
    )  # fmt: skip
    receiver = ReceiverLimits(
        header_timeout_s=s.webhook_header_timeout_s,
        body_timeout_s=s.webhook_body_timeout_s,
        keep_alive_s=s.webhook_keep_alive_s,
        max_connections=s.webhook_max_connections,
        max_json_depth=s.webhook_max_json_depth,
    )
    return WebhookConfig(
        landing_dir=s.landing_dir,
        secrets=secrets,
        rate_limits=limits,
        invalid_rate_limit=invalid,
        limits=receiver,
    )


@webhooks_app.command("serve")
def webhooks_serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8787,
    rate_per_s: Annotated[
        float | None, typer.Option(min=0.001, help="Per-source rate limit (signed requests).")
    ] = None,
    log_level: Annotated[str, typer.Option()] = "info",
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="HTTP worker processes (>1 needs a fixed port).")
    ] = 1,
) -> None:
    """Receive gateway webhooks; each is durably landed before a 2xx. Every enabled source
    (PAYSIGHT_WEBHOOK_SOURCES, default: the active gateways) needs its secret."""
    from ingestion.webhooks.config import WebhookConfigError
    from ingestion.webhooks.server import serve

    s = _settings()
    try:
        config = _webhook_config(s, rate_per_s)
    except WebhookConfigError as exc:
        typer.secho(f"paysight webhooks: {exc}", fg=typer.colors.RED, err=True)
        if "PAYSIGHT_SIMULATED_WEBHOOK_SECRET" in str(exc):
            typer.secho(
                "  (`paysight demo` or `paysight simulate` generate one for this installation)",
                err=True,
            )
        raise typer.Exit(code=2) from None
    typer.echo(
        f"listening on http://{host}:{port}; sources: {', '.join(sorted(config.secrets))}; "
        f"landing zone {s.landing_dir}"
        + (f", shipped to {s.landing_url}" if storage.is_remote(s.landing_url) else "")
    )
    shipper = None
    if storage.is_remote(s.landing_url):  # the journal stays local; sealed lines are shipped
        store = storage.S3Store.from_url(str(s.landing_url))
        shipper = storage.Shipper(store, s.landing_dir).start()
    try:
        serve(host, port, config, log_level=log_level, workers=workers)
    except WebhookConfigError as exc:
        typer.secho(f"paysight webhooks: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from None
    finally:
        if shipper is not None:
            shipper.stop()


@webhooks_app.command("quarantine")
def webhooks_quarantine(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List gateway events that never matched a payment and left the retry queue."""
    from billing_jobs.ledger import upgrade_ledger
    from billing_jobs.payments.event_quarantine import quarantined_events

    s = _settings()
    rows = quarantined_events(upgrade_ledger(s.ledger_url))
    _emit(
        {"quarantined": rows},
        as_json,
        lambda d: (
            [
                typer.echo(
                    f"{r['gateway']:10} {r['event_id']:32} {r['event_type']:28} {r['reason']}"
                )
                for r in d["quarantined"]
            ]
            or typer.echo("no quarantined events")
        ),
    )


@webhooks_app.command("replay")
def webhooks_replay(
    event_id: Annotated[
        list[str] | None, typer.Option("--event-id", help="Replay only these events.")
    ] = None,
    all_events: Annotated[bool, typer.Option("--all", help="Replay every one.")] = False,
    discard: Annotated[bool, typer.Option("--discard", help="Drop them instead.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Apply quarantined gateway events again (after fixing what they were missing), or drop
    them with --discard; a redelivery of a dropped event stays a duplicate."""
    from datetime import UTC, datetime

    from billing_jobs.ledger import upgrade_ledger
    from billing_jobs.payments import event_quarantine as eq
    from billing_jobs.payments.gateway_events import replay_quarantined

    if not event_id and not all_events:
        typer.secho("paysight webhooks replay: give --event-id ID (repeatable) or --all",
                    fg=typer.colors.RED, err=True)  # fmt: skip
        raise typer.Exit(code=2)
    from billing_jobs.inputs import InputError, text

    try:
        ids = [text(e, "--event-id", max_len=255) for e in event_id or []]
    except InputError as exc:
        typer.secho(f"paysight webhooks replay: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from None
    s = _settings()
    engine = upgrade_ledger(s.ledger_url)
    if discard:
        chosen = ids or [r["event_id"] for r in eq.quarantined_events(engine)]
        _emit({"discarded": eq.discard(engine, chosen)}, as_json, lambda d: typer.echo(d))
        return
    report = replay_quarantined(engine, datetime.now(UTC), ids or None)
    _emit(report.to_dict(), as_json, lambda d: [typer.echo(f"{k:12} {v}") for k, v in d.items()])


from orchestration import (  # noqa: E402
    cli_backup,
    cli_billing,
    cli_invoices,
    cli_payments,
    cli_reports,
    cli_retention,
)

cli_backup.register(app)
cli_billing.register(app)
cli_invoices.register(app)
cli_payments.register(app)
cli_reports.register(app)
cli_retention.register(app)


def main() -> None:  # pragma: no cover - console entry
    app(prog_name="paysight")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
