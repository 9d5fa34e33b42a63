"""Reading marts and writing ``ml.*`` tables, and the metadata shapes every ML asset shows."""

from __future__ import annotations

import dagster as dg
import pandas as pd

from ml.forecast.revenue import RevenueForecasts
from ml.plots import png_markdown
from ml.promotion import Published
from orchestration.lib.resources import WarehouseResource

DRIFT_REFERENCE_TABLE = "churn_training_reference"


def read_sql(warehouse: WarehouseResource, sql: str, params: list | None = None) -> pd.DataFrame:
    with warehouse.connect(read_only=True) as con:
        return con.execute(sql, params or []).df()


def table_exists(warehouse: WarehouseResource, schema: str, table: str) -> bool:
    with warehouse.connect(read_only=True) as con:
        found = con.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = ? and table_name = ?",
            [schema, table],
        ).fetchone()
    return bool(found and found[0])


def write_table(warehouse: WarehouseResource, table: str, frame: pd.DataFrame) -> None:
    """Replace ``ml.<table>`` with ``frame`` in one statement (readers never see it half done)."""
    with warehouse.connect() as con:
        con.execute("create schema if not exists ml")
        con.register("_frame", frame)
        con.execute(f"create or replace table ml.{table} as select * from _frame")
        con.unregister("_frame")


def md_table(frame: pd.DataFrame, rows: int = 10) -> dg.MetadataValue:
    if frame.empty:
        return dg.MetadataValue.md("(empty)")
    return dg.MetadataValue.md(frame.head(rows).to_markdown(index=False, floatfmt=".4g"))


def md_image(png: bytes, alt: str) -> dg.MetadataValue:
    return dg.MetadataValue.md(png_markdown(png, alt))


def finite_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """Metadata values must be JSON numbers: drop NaN/inf rather than show nonsense."""
    out = {}
    for key, value in metrics.items():
        number = float(value)
        if number == number and abs(number) != float("inf"):
            out[key] = number
    return out


def published_metadata(
    published: Published, run_id: str, metrics: dict[str, float], table: pd.DataFrame
) -> dict[str, object]:
    """What every training asset shows: run, version, promotion decision, metrics, table."""
    return {
        "mlflow_run_id": run_id,
        "registered_version": published.version,
        "promoted": published.promoted,
        "promotion_reason": published.reason,
        **finite_metrics(metrics),
        "comparison": md_table(table),
        **{name: md_image(png, name) for name, png in published.images.items()},
    }


def forecast_metadata(result: RevenueForecasts, run_id: str) -> dict[str, object]:
    daily = result.forecast[result.forecast["series"] == "daily_net_revenue"]
    return {
        "mlflow_run_id": run_id,
        **{f"model_{k}": v for k, v in result.models.items()},
        **finite_metrics(result.metrics),
        "forecast_total_minor": int(daily["yhat"].sum()),
        "preview": md_table(result.forecast, 7),
        "backtest": md_table(result.summary, 20),
        **{
            f"plot_{name}": md_image(png, f"{name} forecast against actuals")
            for name, png in result.plots.items()
        },
    }
