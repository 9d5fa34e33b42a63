"""The operator CLI of issue #17 on a temporary data directory: money printed as money with
Indian grouping and `--json` in minor units, creates that say what they created, credit-note
PDFs, one-invoice collection, and bad input refused (exit 2) with nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from billing_jobs.ledger import make_engine
from billing_jobs.ledger import schema as s

AT = "2026-04-01T10:00:00+05:30"
runner = CliRunner()


def _cli(*args: str):
    from orchestration.cli import app

    return runner.invoke(app, list(args))


def _ok(*args: str):
    result = _cli(*args)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def world(paysight_env):
    """Catalog, a Karnataka customer on scale-yearly x 2 (a lakh-sized invoice)."""
    _ok("catalog", "load", "--at", AT)
    _ok("customers", "create", "--name", "Kaveri Analytics", "--state-code", "29",
        "--email", "ap@kaveri.test", "--address-line", "12 MG Road", "--city", "Bengaluru",
        "--postal-code", "560001", "--at", AT)  # fmt: skip
    from orchestration.lib.env import get_settings

    engine = make_engine(str(get_settings().ledger_url))
    yield engine
    engine.dispose()


def _count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_create_prints_the_invoice_in_indian_money_and_json_in_paise(world) -> None:
    human = _ok("subscriptions", "create", "--customer", "1", "--plan", "scale-yearly",
                "--quantity", "2", "--at", AT)  # fmt: skip
    # 2 x 99,990.00 = 1,99,980.00 + 18% GST (35,996.40) = 2,35,976.40
    assert "invoice INV/2627/000001 (id 1, recurring, open)" in human.output
    assert "taxable ₹1,99,980.00, total ₹2,35,976.40, due ₹2,35,976.40" in human.output
    shown = json.loads(_ok("invoices", "show", "INV/2627/000001", "--json").output)
    assert shown["total_minor"] == 23597640 and shown["lines"][0]["taxable_minor"] == 19998000
    listed = _ok("invoices", "list").output
    assert "₹2,35,976.40" in listed and "23597640" not in listed
    plans = json.loads(_ok("plans", "list", "--json").output)
    scale = next(p for p in plans if p["code"] == "scale-yearly")
    assert {"currency": "INR", "unit_amount_minor": 9999000, "tiers": []} in scale["prices"]


def test_credit_notes_have_pdfs_and_are_found_by_number(world) -> None:
    _ok("subscriptions", "create", "--customer", "1", "--plan", "scale-monthly", "--at", AT)
    out = _ok("subscriptions", "pause", "1", "--at", "2026-04-16T10:00:00+05:30").output
    assert "credit note CN/2627/000001 (id 1, pause): taxable ₹4,999.50" in out
    # the finding: `invoices pdf CN/...` used to answer "no invoice numbered"
    for args in (("invoices", "pdf", "CN/2627/000001"),
                 ("credit-notes", "pdf", "CN/2627/000001", "--lang", "hi")):  # fmt: skip
        path = Path(_ok(*args).output.strip())
        assert path.read_bytes().startswith(b"%PDF")
    assert path.name == "CN_2627_000001.hi.pdf"
    note = json.loads(_ok("credit-notes", "show", "CN/2627/000001", "--json").output)
    assert note["invoice_number"] == "INV/2627/000001" and note["taxable_minor"] == 499950
    missing = _cli("credit-notes", "pdf", "CN/2627/000099")
    assert missing.exit_code == 2 and "no credit note numbered 'CN/2627/000099'" in missing.output


def test_payments_collect_charges_one_invoice_once(world) -> None:
    _ok("subscriptions", "create", "--customer", "1", "--plan", "scale-monthly", "--at", AT)
    _ok("subscriptions", "create", "--customer", "1", "--plan", "starter-monthly",
        "--trial-days", "0", "--at", AT)  # fmt: skip
    none = _cli("payments", "collect", "1", "--policy", "fixed", "--at", AT)
    assert none.exit_code == 1 and "no default payment method" in none.output
    _ok("payment-methods", "add", "1", "--kind", "netbanking", "--token", "tok_netbanking_HDFC",
        "--at", AT)  # fmt: skip
    paid = _ok("payments", "collect", "INV/2627/000002", "--policy", "fixed", "--at", AT)
    assert "invoice INV/2627/000002: paid on simulated, charged ₹1,178.82" in paid.output
    with world.connect() as conn:
        attempts = conn.execute(select(s.payment_attempts.c.invoice_id)).scalars().all()
    assert attempts == [2]  # only the invoice asked for: invoice 1 was not charged
    again = _cli("payments", "collect", "INV/2627/000002", "--at", AT)
    assert again.exit_code == 2 and "nothing to collect: invoice INV/2627/000002 is paid" in (
        again.output
    )
    unknown = _cli("payments", "collect", "INV/2627/000404", "--at", AT)
    assert unknown.exit_code == 2 and "no invoice numbered" in unknown.output
    assert _count(world, s.payment_attempts) == 1


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--email", "not-an-address"], "is not an e-mail address"),
        (["--name", "Evil\x1b[31m Corp"], "control character"),
        (["--name", "   "], "must not be empty"),
        (["--gstin", "29ABC"], "not 15 letters and digits"),
        (["--gstin", "29AAPFU0939F1ZW"], "checksum"),
        (["--state-code", "KA"], "two-digit GST state code"),
        (["--country", "India"], "two-letter country code"),
        (["--postal-code", "56/0001"], "not a postal code"),
        (["--tax-status", "sez"], "SEZ customer must have a GSTIN"),
        ([], "nothing to update"),
    ],
)
def test_customers_update_refuses_bad_input_and_changes_nothing(world, args, needle) -> None:
    before = json.loads(_ok("customers", "show", "1", "--json").output)
    result = _cli("customers", "update", "1", *args, "--at", AT)
    assert result.exit_code == 2 and needle in result.output, result.output
    assert json.loads(_ok("customers", "show", "1", "--json").output) == before


def test_customers_update_changes_the_address_on_later_documents(world) -> None:
    out = _ok("customers", "update", "1", "--address-line", "4th Floor, 80 Feet Road",
              "--city", "Mysuru", "--postal-code", "570001", "--at", AT)  # fmt: skip
    assert "address        4th Floor, 80 Feet Road, Mysuru, 570001 (IN)" in out.output
    _ok("subscriptions", "create", "--customer", "1", "--plan", "scale-monthly", "--at", AT)
    from billing_jobs.invoicing.documents.from_ledger import invoice_document

    doc = invoice_document(world, 1)
    assert doc.recipient.address == ("4th Floor, 80 Feet Road", "Mysuru 570001")
    listed = _ok("customers", "list", "--search", "kaveri").output
    assert "Kaveri Analytics" in listed and "₹0.00" in listed


def test_lists_filter_and_refuse_unknown_statuses(world) -> None:
    _ok("subscriptions", "create", "--customer", "1", "--plan", "scale-monthly", "--at", AT)
    assert "scale-monthly × 1" in _ok("subscriptions", "list", "--status", "active").output
    assert "no subscriptions" in _ok("subscriptions", "list", "--status", "paused").output
    bad = _cli("subscriptions", "list", "--status", "sleeping")
    assert bad.exit_code == 2 and "unknown status 'sleeping'" in bad.output
    bad = _cli("invoices", "list", "--status", "late")
    assert bad.exit_code == 2 and "unknown invoice status 'late'" in bad.output
    assert _cli("invoices", "list", "--limit", "0").exit_code == 2
    assert "no credit notes" in _ok("credit-notes", "list").output


def test_reports_without_marts_say_how_to_build_them(world) -> None:
    result = _cli("reports", "mrr")
    assert result.exit_code == 2 and "--refresh" in result.output


def test_reports_while_another_process_writes_the_warehouse_say_so(world) -> None:
    """Found by the CLI fuzz test: a dbt build still running (another process) holds DuckDB's
    write lock; the report says so instead of raising IOException."""
    import subprocess
    import sys

    from orchestration.lib.env import get_settings

    path = str(get_settings().warehouse_path)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb,sys,time; c=duckdb.connect(sys.argv[1]); print('held', flush=True); "
         "time.sleep(60)", path],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        result = _cli("reports", "mrr")
    finally:
        holder.kill()
        holder.wait()
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 2, result.output
    assert "being written by another process" in " ".join(result.output.split())
