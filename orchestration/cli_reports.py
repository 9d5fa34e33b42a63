"""`paysight reports mrr|recon|success`: revenue, reconciliation and payment success read from
the marts; `--refresh` rebuilds them from the ledger, gateway and bank data first. Each report
prints when its mart was built and the latest data it holds."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from orchestration.cli_args import parse_count, parse_instant
from orchestration.cli_billing import JsonOption
from orchestration.cli_output import emit, money, table

reports_app = typer.Typer(help="Reports from the marts (MRR, reconciliation, success rates).",
                          no_args_is_help=True)  # fmt: skip
RefreshOption = Annotated[
    bool,
    typer.Option("--refresh", help="Rebuild the marts (and what they read) before reporting."),
]
AsOfOption = Annotated[
    str | None,
    typer.Option("--as-of", help="With --refresh: the instant the marts describe (default: now)."),
]


def _report(mart: str, refresh: bool, as_of: str | None, read: Any) -> dict[str, Any]:
    from orchestration.cli_context import ensure_dagster_home as _ensure_dagster_home
    from orchestration.cli_context import settings_or_exit as _settings
    from orchestration.reports import ReportError, built_at, refresh_marts

    settings = _settings()
    _ensure_dagster_home()
    warehouse = Path(str(settings.warehouse_path))
    refreshed = None
    if refresh:
        moment: datetime = parse_instant(as_of, "--as-of")
        refreshed = refresh_marts(settings, moment)
        if not refreshed["success"]:
            typer.secho(f"error: refreshing the marts failed (Dagster run {refreshed['run_id']});"
                        f" see {refreshed['log']} or `make ui`", fg=typer.colors.RED, err=True)  # fmt: skip
            raise typer.Exit(code=1)
    try:
        body = read(warehouse, settings.spark_tables_dir)
    except ReportError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from None
    stamp, source = built_at(mart, warehouse)
    return {"mart": f"marts.{mart}", "built_at": stamp, "built_by": source,
            "refreshed": refreshed is not None, **body}  # fmt: skip


def _as_of_note(r: dict[str, Any]) -> None:
    note = f"as of: marts.{r['mart'].split('.')[-1]} built {r['built_at'] or 'never'} ({r['built_by']})"
    note += f"; data through {r['data_through'] or '–'}"
    if not r["refreshed"]:
        note += "; --refresh rebuilds it from the ledger"
    else:
        note += " (refreshed now)"
    typer.secho(note, dim=True)


@reports_app.command("mrr")
def report_mrr(
    months: Annotated[int, typer.Option(help="How many months back.")] = 6,
    refresh: RefreshOption = False,
    as_of: AsOfOption = None,
    as_json: JsonOption = False,
) -> None:
    """MRR by month and currency: new, expansion, contraction, churn, NRR."""
    from orchestration.reports import mrr_report

    months = parse_count(months, "--months", most=120)
    out = _report("mrr_monthly", refresh, as_of, lambda w, tables: mrr_report(w, months, tables))

    def render(r: dict[str, Any]) -> None:
        _as_of_note(r)
        if not r["months"]:
            typer.echo("no MRR yet")
            return
        table(
            [(str(m["month"])[:7], m["currency"], money(m["mrr_minor"], m["currency"]),
              money(m["new_minor"], m["currency"]), money(m["expansion_minor"], m["currency"]),
              money(m["contraction_minor"], m["currency"]), money(m["churn_minor"], m["currency"]),
              m["active_customers"], "–" if m["nrr"] is None else f"{m['nrr']:.1%}")
             for m in r["months"]],
            ["month", "cur", "MRR", "new", "expansion", "contraction", "churn", "customers",
             "NRR"],
            right=(2, 3, 4, 5, 6, 7, 8),
        )  # fmt: skip

    emit(out, as_json, render=render)


@reports_app.command("recon")
def report_recon(
    limit: Annotated[int, typer.Option(help="Unmatched movements to list.")] = 20,
    refresh: RefreshOption = False,
    as_of: AsOfOption = None,
    as_json: JsonOption = False,
) -> None:
    """Reconciliation of ledger, gateway and bank: movements by status, then the unmatched."""
    from orchestration.reports import recon_report

    limit = parse_count(limit)
    out = _report(
        "fct_reconciliation", refresh, as_of, lambda w, tables: recon_report(w, limit, tables)
    )

    def render(r: dict[str, Any]) -> None:
        _as_of_note(r)
        table(
            [(x["status"], x["currency"] or "–", x["movements"],
              money(x["ledger_amount_minor"], x["currency"]),
              money(x["gateway_amount_minor"], x["currency"]),
              money(x["settled_amount_minor"], x["currency"])) for x in r["by_status"]],
            ["status", "cur", "movements", "ledger", "gateway", "settled"],
            right=(2, 3, 4, 5),
        )  # fmt: skip
        if r["unmatched"]:
            typer.echo("unmatched (oldest first):")
            table(
                [(x["recon_key"], x["status"], money(x["ledger_amount_minor"], x["currency"]),
                  money(x["gateway_amount_minor"], x["currency"]), x["age_days"])
                 for x in r["unmatched"]],
                ["key", "status", "ledger", "gateway", "age (days)"],
                right=(2, 3, 4),
            )  # fmt: skip

    emit(out, as_json, render=render)


@reports_app.command("success")
def report_success(
    days: Annotated[int, typer.Option(help="How many days back.")] = 30,
    refresh: RefreshOption = False,
    as_of: AsOfOption = None,
    as_json: JsonOption = False,
) -> None:
    """Payment success rates by gateway and method."""
    from orchestration.reports import success_report

    days = parse_count(days, "--days", most=3660)
    out = _report(
        "payment_success_daily", refresh, as_of, lambda w, tables: success_report(w, days, tables)
    )

    def render(r: dict[str, Any]) -> None:
        _as_of_note(r)
        if not r["by_gateway_method"]:
            typer.echo("no payment attempts yet")
            return
        table(
            [(x["gateway"], x["method"], x["currency"], x["attempts"], x["succeeded"],
              x["failed"], "–" if x["success_rate"] is None else f"{x['success_rate']:.1%}",
              money(x["succeeded_amount_minor"], x["currency"])) for x in r["by_gateway_method"]],
            ["gateway", "method", "cur", "attempts", "succeeded", "failed", "success", "collected"],
            right=(3, 4, 5, 6, 7),
        )  # fmt: skip

    emit(out, as_json, render=render)


def register(app: typer.Typer) -> None:
    app.add_typer(reports_app, name="reports")
