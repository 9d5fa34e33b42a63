"""docs/operations.md's operator walkthrough runs as written: every `$ paysight ...` line of
its `console walkthrough` blocks is executed, in order, against a fresh world (an empty
ledger and warehouse in a temporary data directory), and every line shown under a command
must appear in its output, in that order. `# exits N` after a command is its exit code.

Slow: the reports step rebuilds the marts (a Dagster run of dbt) once, about a minute or two."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

import pytest
from typer.testing import CliRunner

from tests.conftest import REPO_ROOT

DOC = REPO_ROOT / "docs" / "operations.md"
FENCE = re.compile(r"^```console walkthrough\n(.*?)^```", re.M | re.S)
EXITS = re.compile(r"\s+#\s*exits\s+(\d+)\s*$")


@dataclass
class Step:
    command: str
    args: list[str]
    exit_code: int = 0
    expected: list[str] = field(default_factory=list)


def walkthrough_steps(text: str) -> list[Step]:
    """The commands of every `console walkthrough` block, with the lines expected of them."""
    steps: list[Step] = []
    for block in FENCE.findall(text):
        for line in block.splitlines():
            if line.startswith("$ "):
                command = line[2:]
                code = 0
                m = EXITS.search(command)
                if m:
                    code, command = int(m.group(1)), command[: m.start()]
                words = shlex.split(command)
                if not words or words[0] != "paysight":
                    raise AssertionError(f"walkthrough commands start with paysight: {line!r}")
                steps.append(Step(command, words[1:], code))
            elif line.strip() and line.strip() != "...":
                if not steps:
                    raise AssertionError(f"output before any command: {line!r}")
                steps[-1].expected.append(line)
    return steps


def _squash(text: str) -> str:
    return " ".join(text.split())


def missing_lines(output: str, expected: list[str]) -> list[str]:
    """Expected lines not found in `output` in order (each one within one output line)."""
    lines = [_squash(x) for x in output.splitlines()]
    at, missing = 0, []
    for want in map(_squash, expected):
        for i in range(at, len(lines)):
            if want in lines[i]:
                at = i + 1
                break
        else:
            missing.append(want)
    return missing


def test_the_walkthrough_parser_reads_commands_exit_codes_and_output() -> None:
    text = (
        '```console walkthrough\n$ paysight a --x "b c"\none\n...\ntwo\n'
        "$ paysight d  # exits 2\nerror: e\n```\n```sh\n$ paysight not-run\n```\n"
    )
    steps = walkthrough_steps(text)
    assert [(s.args, s.exit_code, s.expected) for s in steps] == [
        (["a", "--x", "b c"], 0, ["one", "two"]),
        (["d"], 2, ["error: e"]),
    ]
    assert missing_lines("one\nx\ntwo  three", ["one", "two three"]) == []
    assert missing_lines("two\none", ["one", "two"]) == ["two"]  # order matters


def test_the_doc_has_a_walkthrough_of_every_operator_task() -> None:
    commands = {" ".join(s.args[:2]) for s in walkthrough_steps(DOC.read_text(encoding="utf-8"))}
    for task in ("catalog load", "plans list", "customers create", "customers update",
                 "customers list", "customers show", "payment-methods add",
                 "subscriptions create", "subscriptions list", "subscriptions show",
                 "subscriptions change", "subscriptions pause", "subscriptions resume",
                 "subscriptions cancel", "invoices show", "invoices list", "invoices pdf",
                 "invoices run", "invoices preview", "payments collect", "credit-notes list",
                 "credit-notes show", "credit-notes pdf", "billing run", "reports mrr",
                 "reports recon", "reports success"):  # fmt: skip
        assert task in commands, f"docs/operations.md does not show `paysight {task}`"


@pytest.mark.slow
def test_the_operations_walkthrough_runs_as_written(paysight_env) -> None:
    from orchestration.cli import app

    runner = CliRunner()
    steps = walkthrough_steps(DOC.read_text(encoding="utf-8"))
    assert len(steps) > 40
    for n, step in enumerate(steps, start=1):
        result = runner.invoke(app, step.args)
        where = f"step {n}: paysight {step.command}\n--- output ---\n{result.output}"
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(where) from result.exception
        assert result.exit_code == step.exit_code, where
        missing = missing_lines(result.output, step.expected)
        assert not missing, f"{where}\n--- missing ---\n" + "\n".join(missing)


def test_the_simulated_token_formats_in_the_doc_are_the_gateways() -> None:
    from simulation.gateway.behaviour import METHOD_ISSUERS
    from simulation.gateway.port import parse_token

    text = DOC.read_text(encoding="utf-8")
    for issuers in METHOD_ISSUERS.values():
        assert f"`{' '.join(issuers)}`" in text, issuers
    tokens = re.findall(r"`(tok_[a-z_]*<[a-z0-9_<>]+)`", text)
    assert len(tokens) == 6  # card, card mandate, UPI, UPI mandate, net banking, wallet
    for token in tokens:
        example = (
            token.replace("<issuer>", "hdfc").replace("<brand>", "visa").replace("<last4>", "4242")
            .replace("<mm>", "12").replace("<yyyy>", "2030").replace("<handle>", "okicici")
            .replace("<bank>", "HDFC").replace("<name>", "paytm")
        )  # fmt: skip
        assert parse_token(example)["issuer"], token
