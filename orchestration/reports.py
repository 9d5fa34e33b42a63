"""The operator's reports (`paysight reports mrr|recon|success`): read from the marts, and
refreshed on demand by materializing the marts and everything upstream of them (ledger copy,
gateway and bank ingestion, dbt) through Dagster, as the scheduled runs do. Each report says
how current it is: when its mart was last built and the latest data it holds."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from orchestration.lib.env import Settings

REPORT_MARTS = {
    "mrr": "mrr_monthly",
    "recon": "fct_reconciliation",
    "success": "payment_success_daily",
}


def materialize_all_but_ml(
    settings: Settings, run_config: dict[str, Any], instance: dg.DagsterInstance
) -> tuple[Any, list[str]]:
    """Materialize every asset but the ML ones (ingestion, all dbt models and their tests) on
    `settings`' stores; returns the result and the failed error-severity checks."""
    from orchestration.definitions import defs
    from orchestration.defs.resources import build_resources

    graph = defs.resolve_asset_graph()
    ml = dg.AssetSelection.groups("ml").resolve(graph)
    result = dg.materialize(
        list(defs.assets or []),
        selection=dg.AssetSelection.all() - dg.AssetSelection.assets(*ml),
        run_config=run_config,
        instance=instance,
        resources=build_resources(settings),
        raise_on_error=False,
    )
    failed = sorted(
        f"{e.asset_key.to_user_string()}:{e.check_name}"
        for e in result.get_asset_check_evaluations()
        if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR
    )
    return result, failed


def refresh_marts(settings: Settings, as_of: datetime) -> dict[str, Any]:
    """Rebuild the marts with everything they read (ledger copy, gateway and bank ingestion,
    every dbt model and test: one model's tests refer to others, so a partial build would test
    against missing tables; ML excluded) in the instance at DAGSTER_HOME, so the run shows in
    the UI. `as_of` is the instant freshness is judged at and the day the marts describe."""
    at = as_of.isoformat()
    run_config = {
        "loggers": {"console": {"config": {"log_level": "WARNING"}}},
        "ops": {
            "raw_bank_settlements": {"config": {"as_of": at}},
            "raw_webhook_events": {"config": {"as_of": at}},
            "paysight_dbt_models": {"config": {"as_of": as_of.date().isoformat()}},
        },
    }
    log = Path(settings.data_dir) / "logs" / "reports_refresh.log"
    with dg.DagsterInstance.get() as instance, _output_to(log):
        result, failed = materialize_all_but_ml(settings, run_config, instance)
    return {"run_id": result.run_id, "success": result.success, "checks_failed": failed,
            "log": str(log)}  # fmt: skip


@contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (dbt's and Dagster's console output, subprocesses
    included) to `path` while the block runs: the report is what the operator reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "a", encoding="utf-8") as fh:
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        try:
            # Python-level writers too (a test runner may have replaced sys.stdout).
            with redirect_stdout(fh), redirect_stderr(fh):
                yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def built_at(mart: str, warehouse: Path) -> tuple[str | None, str]:
    """When `mart` was last materialized (from the Dagster instance at DAGSTER_HOME), else
    when the warehouse file last changed; and which of the two it is."""
    if os.environ.get("DAGSTER_HOME"):
        with dg.DagsterInstance.get() as instance:
            event = instance.get_latest_materialization_event(dg.AssetKey(mart))
        if event is not None:
            stamp = datetime.fromtimestamp(event.timestamp, UTC).isoformat(timespec="seconds")
            return stamp, f"run {event.run_id[:8]}"
    if warehouse.exists():
        stamp = datetime.fromtimestamp(warehouse.stat().st_mtime, UTC)
        return stamp.isoformat(timespec="seconds"), "warehouse file changed"
    return None, "never built"


class ReportError(RuntimeError):
    """The warehouse or the mart a report reads does not exist yet."""


def _rows(
    warehouse: Path, sql: str, params: list[Any] | None = None, tables_dir: Path | None = None
) -> list[dict[str, Any]]:
    if not warehouse.exists():
        raise ReportError(
            f"no warehouse at {warehouse}: build the marts with --refresh (or `paysight demo`)"
        )
    import duckdb

    from ingestion.warehouse import connect

    try:
        con = connect(warehouse, read_only=True, tables_dir=tables_dir)
    except duckdb.IOException as exc:  # a writer (a materialization, dbt) holds the file lock
        raise ReportError(
            f"the warehouse {warehouse} is being written by another process; try again when it "
            f"finishes ({str(exc).split(' See also')[0]})"
        ) from None
    try:
        try:
            cur = con.execute(sql, params or [])
        except duckdb.CatalogException as exc:
            raise ReportError(f"the marts are not built yet ({exc}); run with --refresh") from None
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy / decimal scalars from DuckDB
        return value.item()
    if value is not None and type(value).__name__ == "Decimal":
        return float(value)
    return value


def _clean(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in r.items()} for r in rows]


def mrr_report(warehouse: Path, months: int, tables_dir: Path | None = None) -> dict[str, Any]:
    """The last `months` months of `marts.mrr_monthly` per currency, oldest first."""
    rows = _rows(
        warehouse,
        """select month, currency, mrr_minor, new_minor, expansion_minor, contraction_minor,
                  churn_minor, reactivation_minor, active_customers, arr_minor, nrr, grr
           from marts.mrr_monthly
           where month > (select max(month) from marts.mrr_monthly) - (? * interval 1 month)
           order by currency, month""",
        [months],
        tables_dir,
    )
    (through,) = _rows(warehouse, "select max(month) as m from marts.mrr_monthly", None, tables_dir)
    return {"months": _clean(rows), "data_through": _plain(through["m"])}


def recon_report(warehouse: Path, limit: int, tables_dir: Path | None = None) -> dict[str, Any]:
    """Money movements of `marts.fct_reconciliation` by status, and the unmatched ones."""
    by_status = _rows(
        warehouse,
        """select status, currency, count(*) as movements,
                  coalesce(sum(ledger_amount_minor), 0) as ledger_amount_minor,
                  coalesce(sum(gateway_amount_minor), 0) as gateway_amount_minor,
                  coalesce(sum(settled_amount_minor), 0) as settled_amount_minor
           from marts.fct_reconciliation group by status, currency order by status, currency""",
        None,
        tables_dir,
    )
    open_items = _rows(
        warehouse,
        """select recon_key, status, currency, ledger_amount_minor, gateway_amount_minor,
                  settled_amount_minor, age_days
           from marts.fct_reconciliation where status <> 'matched'
           order by age_days desc, recon_key limit ?""",
        [limit],
        tables_dir,
    )
    (through,) = _rows(
        warehouse, "select max(created_at) as t from marts.fct_reconciliation", None, tables_dir
    )
    return {
        "by_status": _clean(by_status),
        "unmatched": _clean(open_items),
        "data_through": _plain(through["t"]),
    }


def success_report(warehouse: Path, days: int, tables_dir: Path | None = None) -> dict[str, Any]:
    """Payment success by gateway and method over the last `days` days of data."""
    window = """payment_date > (select max(payment_date) from marts.payment_success_daily)
                - (? * interval 1 day)"""
    rows = _rows(
        warehouse,
        f"""select gateway, method, currency, sum(attempts) as attempts,
                   sum(succeeded) as succeeded, sum(failed) as failed,
                   sum(succeeded_amount_minor) as succeeded_amount_minor
            from marts.payment_success_daily where {window}
            group by gateway, method, currency order by gateway, method, currency""",
        [days],
        tables_dir,
    )
    for r in rows:
        r["success_rate"] = round(r["succeeded"] / r["attempts"], 4) if r["attempts"] else None
    (through,) = _rows(
        warehouse,
        "select max(payment_date) as d from marts.payment_success_daily",
        None,
        tables_dir,
    )
    return {"by_gateway_method": _clean(rows), "data_through": _plain(through["d"])}
