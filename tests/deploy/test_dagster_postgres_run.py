"""The Dagster instance on PostgreSQL (deploy/dagster-postgres.yaml): with DAGSTER_HOME holding
that file and DAGSTER_PG_URL naming a throwaway database, the ingestion -> dbt -> ML run is
recorded in PostgreSQL itself: the run in `runs`, each asset's ASSET_MATERIALIZATION in
`event_logs`, read back with psycopg rather than through Dagster."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator

import pytest

from orchestration.lib.paths import PROJECT_ROOT
from tests.e2e.demo_world import embedded_settings

pytestmark = pytest.mark.postgres

# A tiny world: enough payments and months for every dbt model and the revenue forecast, small
# enough for the whole test to stay well under a minute on two busy cores.
WORLD = {"customers": 15, "months": 3, "seed": 1, "start": "2025-01-01"}
ML_ASSET = "revenue_forecast"


def _server_url() -> str:
    url = os.environ.get("PAYSIGHT_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("PAYSIGHT_TEST_POSTGRES_URL is not set: no PostgreSQL server to test on")
    return url


def _libpq(url: str) -> str:
    """The SQLAlchemy-style test URL as the plain postgresql:// URL libpq and Dagster read."""
    scheme, rest = url.split("://", 1)
    return f"{scheme.split('+', 1)[0]}://{rest}"


@pytest.fixture
def dagster_pg_url() -> Iterator[str]:
    """A fresh database on the test server for this test only, dropped afterwards."""
    import psycopg

    server = _libpq(_server_url())
    name = f"paysight_dagster_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(server, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at PAYSIGHT_TEST_POSTGRES_URL is not reachable: {exc}")
    with admin:
        admin.execute(f'create database "{name}"')
    base, _, _ = server.rpartition("/")
    try:
        yield f"{base}/{name}"

    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'drop database if exists "{name}" with (force)')


def test_asset_run_is_stored_in_postgres(tmp_path, monkeypatch, dagster_pg_url):
    import dagster as dg
    import psycopg

    from orchestration.definitions import defs
    from orchestration.defs.resources import build_resources
    from orchestration.demo import DEMO_RUN_CONFIG, build_world

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "deploy" / "dagster-postgres.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    # dagster-postgres speaks psycopg2; SQLAlchemy 2.1 would pick psycopg 3 for a bare
    # postgresql:// URL (and Dagster's NOTIFY fails there), so the URL names the driver.
    monkeypatch.setenv(
        "DAGSTER_PG_URL", dagster_pg_url.replace("postgresql://", "postgresql+psycopg2://", 1)
    )

    settings = embedded_settings(tmp_path / "data")
    world = build_world(settings, **WORLD)
    run_config = {
        **DEMO_RUN_CONFIG,
        "ops": {
            "paysight_dbt_models": {"config": {"as_of": str(world.end)}},
            ML_ASSET: {"config": {"candidates": ["seasonal_naive"]}},
        },
    }
    # The forecast and everything upstream of it (its ingestion assets, the dbt models that
    # feed mrr_monthly and their tests): the other ML assets and marts go through the same
    # wiring and would only add minutes to a test about where the run is recorded.
    # dbt runs only the tests whose every parent is in the selection (a relationship test to an
    # unselected model would read a relation this fresh warehouse does not have).
    monkeypatch.setenv("DBT_INDIRECT_SELECTION", "cautious")
    selection = dg.AssetSelection.assets(ML_ASSET).upstream().required_multi_asset_neighbors()
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        result = dg.materialize(
            list(defs.assets or []),
            selection=selection,
            run_config=run_config,
            instance=instance,
            resources=build_resources(settings),
            raise_on_error=False,
        )
    assert result.success
    expected = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {"raw_gateway_charges", "fct_payments", "mrr_monthly", ML_ASSET} <= expected

    with psycopg.connect(dagster_pg_url) as con:
        runs = con.execute("select run_id, status from runs").fetchall()
        rows = con.execute(
            "select distinct asset_key from event_logs "
            "where run_id = %s and dagster_event_type = 'ASSET_MATERIALIZATION'",
            (result.run_id,),
        ).fetchall()
    assert runs == [(result.run_id, "SUCCESS")]
    # Asset keys are stored as JSON lists of path parts: ["fct_payments"].
    stored = {"/".join(__import__("json").loads(key)) for (key,) in rows}
    assert stored == expected
