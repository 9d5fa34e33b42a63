"""#19: after the demo world is built (simulator, gateway, webhooks, bank files, ledger copy,
dbt), `paysight scan-pii` finds no card number, CVV, UPI PIN or API key in any store, log or
landing file."""

from __future__ import annotations

import pytest

from orchestration.pii_scan import scan


@pytest.mark.slow
def test_the_demo_world_holds_no_card_number_cvv_pin_or_key(demo_world):
    from orchestration.lib.env import load_settings

    data = demo_world.data_dir
    settings = load_settings(
        data_dir=data,
        ledger_url=f"sqlite:///{data / 'ledger.sqlite'}",
        warehouse_path=demo_world.warehouse_path,
        landing_url=str(data / "landing"),
        documents_url=str(data / "invoices"),
        mlflow_tracking_uri=f"sqlite:///{data / 'mlflow.db'}",
        mlflow_artifacts_dir=data / "mlartifacts",
    )
    out = scan(settings)
    assert out["files_scanned"] > 10, out
    assert out["findings"] == [], out["findings"][:5]
