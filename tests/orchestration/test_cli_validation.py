"""The CLI refuses bad input at the edge: exit code 2, one line naming what was wrong, no
traceback and nothing written. A hypothesis fuzz test drives every command with hostile
arguments (dates out of range, huge integers, control characters, invalid UTF-8, long text)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import typer
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from typer.testing import CliRunner

from billing_jobs.catalog import DEMO_CATALOG, load_catalog
from billing_jobs.customers import create_customer
from billing_jobs.ledger import make_engine, upgrade_ledger
from billing_jobs.ledger import schema as s
from billing_jobs.subscriptions.service import create_subscription

T0 = datetime(2025, 3, 3, 6, 0, tzinfo=UTC)
AT = ["--at", T0.isoformat()]
runner = CliRunner()
# Long-running or blocking commands (a whole world, a server) are exercised by their own tests.
# `backup` writes a folder wherever --to says ("/" is among the hostile values); its inputs are
# covered by test_backup.py.
NOT_FUZZED = {("demo",), ("simulate",), ("webhooks", "serve"), ("backup",)}


@pytest.fixture
def world(paysight_env):
    from orchestration.lib.env import get_settings

    engine = make_engine(str(get_settings().ledger_url))
    upgrade_ledger(engine)
    load_catalog(engine, DEMO_CATALOG, now=T0)
    cid = create_customer(engine, name="Acme", state_code="29", currency="INR", now=T0)["id"]
    create_subscription(engine, customer_id=cid, plan="scale-monthly", start=T0)
    yield engine
    engine.dispose()


def _cli(*args: str):
    from orchestration.cli import app

    return runner.invoke(app, list(args))


def _customers(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(s.customers)).scalar_one()


def _plain(output: str) -> str:
    """The message without rich's box drawing and line wrapping."""
    return " ".join(output.translate(str.maketrans("", "", "│╭╮╰╯─")).split())


CREATE = ["customers", "create", "--state-code", "29"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([*CREATE, "--name", "Acme", "--at", "9999-12-31"], "no UTC offset"),
        ([*CREATE, "--name", "Acme", "--at", "9999-12-31T00:00:00Z"], "outside 2000-01-01"),
        ([*CREATE, "--name", "Acme", "--at", "yesterday"], "not an ISO 8601 instant"),
        ([*CREATE, "--name", "x" * 5000], "4096"),  # refused before any command
        ([*CREATE, "--name", "x" * 201, *AT], "at most 200"),  # the schema's length
        ([*CREATE, "--name", "Ac\x1b[31mme", *AT], "U+001B"),  # ANSI escape
        ([*CREATE, "--name", "Acme\x00", *AT], "U+0000"),
        ([*CREATE, "--name", "Ac\u202eme", *AT], "U+202E"),  # right-to-left override
        ([*CREATE, "--name", "\udcff\udcfe", *AT], "not valid UTF-8"),  # undecodable argv
        ([*CREATE, "--name", "Acme", "--email", "not-an-email<script>", *AT], "e-mail"),
        ([*CREATE, "--name", "Acme", "--email", "a@b", *AT], "e-mail"),
        ([*CREATE, "--name", "Acme", "--gstin", "27AAPFU0939F1ZV", *AT], "registered in state 27"),
        ([*CREATE, "--name", "Acme", "--gstin", "29ABCDE1234F1ZX", *AT], "check"),
        (["subscriptions", "create", "--customer", "1", "--plan", "scale-monthly",
          "--quantity", "9999999999999", *AT], "less than or equal to 1000000"),
        (["subscriptions", "create", "--customer", "1", "--plan", "scale-monthly",
          "--trial-days", "-1", *AT], "greater than or equal to 0"),
        (["customers", "show", "99999999999999999999999"], "less than or equal to"),
        (["customers", "show", "0"], "greater than or equal to 1"),
        (["billing", "run", "--as-of", "2025-05-01T00:00:00"], "no UTC offset"),
        (["refunds", "create", "1", "--amount-minor", "-5", *AT], "greater than or equal to 1"),
        (["customers", "erase", str(2**63), "--yes"], "less than or equal to"),
        (["customers", "erase", "1"], "not confirmed"),  # no terminal answers the question
        (["customers", "erase", "1", "--yes", *AT], "live subscription(s) 1; cancel"),
        (["customers", "erase", "2", "--yes", *AT], "customer 2 does not exist"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_with_the_field_named_and_writes_nothing(world, args, needle):
    before = _customers(world)
    result = _cli(*args)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert needle in _plain(result.output), result.output
    assert "Traceback" not in result.output
    assert _customers(world) == before


def test_good_input_still_works(world):
    result = _cli(*CREATE, "--name", " ग्राहक\u200dसेवा Pvt Ltd ", "--email", "ap@acme.co.in",
                  "--gstin", "29ABCDE1234F1ZW", "--at", "2025-03-04T10:00:00+05:30",
                  "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["name"] == "ग्राहक\u200dसेवा Pvt Ltd"  # trimmed; joiner kept


def _commands() -> list[tuple[tuple[str, ...], Any]]:
    """Every leaf command of `paysight` (Typer's own click: matched by shape, not class)."""
    from orchestration.cli import app

    out = []

    def walk(cmd: Any, path: tuple[str, ...]) -> None:
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, (*path, name))
        elif path not in NOT_FUZZED:
            out.append((path, cmd))

    walk(typer.main.get_command(app), ())
    return out


COMMANDS = _commands()
assert len(COMMANDS) > 20, COMMANDS  # the walk found the command tree
HOSTILE = st.one_of(
    st.sampled_from([
        "1", "0", "-1", "2", "9999999999999", "99999999999999999999999", "1e9", "NaN", "",
        "2025-03-03T06:00:00+00:00", "2025-03-03", "9999-12-31", "0001-01-01T00:00:00Z",
        "scale-monthly", "starter-monthly", "INR", "29", "96", "regular", "export", "smart",
        "29ABCDE1234F1ZW", "27AAPFU0939F1ZV", "a@b.co", "not-an-email<script>", "tok_upi_ybl",
        "tok_card_hdfc_visa_4242_12_2030", "card", "upi", "en", "hi", "now", "period_end",
        "\x1b[2J", "x" * 300, "\udcff", "../../etc/passwd", "/", ".", "%s%n", "'; drop table",
    ]),
    st.text(max_size=40),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
)  # fmt: skip


PLAUSIBLE = {int: st.sampled_from(["1", "2"]), float: st.sampled_from(["1.5", "10"])}


def _value(draw, param: Any) -> str:
    """Half the time a plausible value of the parameter's type (so commands get past parsing
    and reach the ledger), else a hostile one."""
    plausible = PLAUSIBLE.get(param.type_descriptor.annotation)
    if plausible is not None and draw(st.booleans()):
        return draw(plausible)
    return draw(HOSTILE)


@st.composite
def invocation(draw) -> list[str]:
    path, cmd = draw(st.sampled_from(COMMANDS))
    args = list(path)
    for param in cmd.params:
        if param.param_type_name == "argument":
            args.append(_value(draw, param))
        elif not param.required and not draw(st.booleans()):
            continue
        elif param.is_flag:
            args.append(param.opts[0])
        elif param.name != "help":
            args += [param.opts[0], _value(draw, param)]
    return args


@pytest.mark.slow  # about 1 s per example on 2 busy cores
@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(args=invocation())
# Found by this test: an id past BIGINT reached SQLite as an int and raised OverflowError.
@example(args=["invoices", "show", str(2**63)])
@example(args=["credit-notes", "show", "9" * 40])
@example(args=["invoices", "show", "\u00b2"])  # a digit to str.isdigit, not to int()
@example(args=["invoices", "list", "--customer", str(2**63)])
@example(args=["customers", "erase", "1"])  # asks; the runner's empty stdin answers nothing
@example(args=["customers", "erase", "\u00b2", "--yes", "--json"])
def test_fuzz_every_command_never_tracebacks(world, args):
    result = _cli(*args)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        args,
        result.output[-2000:],
        repr(result.exception),
    )
    assert result.exit_code in (0, 1, 2), (args, result.output[-2000:])
    assert "Traceback" not in result.output, (args, result.output[-2000:])
