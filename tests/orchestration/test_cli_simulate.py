"""`paysight simulate` builds a small world where settings point, and refuses bad input."""

import json

from typer.testing import CliRunner

from orchestration.cli import app


def test_simulate_small_world_then_refuses_to_clobber_it(paysight_env):
    runner = CliRunner()
    args = ["simulate", "--customers", "25", "--months", "3", "--seed", "5", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["counts"]["customers"] == 25
    assert (paysight_env / "ledger.sqlite").exists() and (paysight_env / "gateway.sqlite").exists()
    assert list((paysight_env / "landing" / "bank").glob("settlement_*.csv"))
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "--overwrite" in again.output
    bad = runner.invoke(app, ["simulate", "--start", "2025-13-40"])
    assert bad.exit_code == 2 and "start" in bad.output
