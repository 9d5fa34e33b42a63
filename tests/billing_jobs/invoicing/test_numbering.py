"""Gapless per-FY document numbers: consecutive, returned by a rollback, serialized between
concurrent transactions (SQLite and, when configured, PostgreSQL)."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import Engine, text

from billing_jobs.errors import ValidationError
from billing_jobs.invoicing.numbering import allocate_numbers, format_number


def _last(engine: Engine, series: str, fy: str) -> int | None:
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT last_value FROM invoice_sequences WHERE series = :s AND financial_year = :f"
            ),
            {"s": series, "f": fy},
        ).scalar_one_or_none()


def test_consecutive_per_series_and_year(engine: Engine) -> None:
    with engine.begin() as conn:
        assert allocate_numbers(conn, "INV", "2526", 3) == [
            "INV/2526/000001", "INV/2526/000002", "INV/2526/000003",
        ]  # fmt: skip
        assert allocate_numbers(conn, "INV", "2526", 0) == []
        assert allocate_numbers(conn, "INV", "2627", 1) == ["INV/2627/000001"]
        assert allocate_numbers(conn, "CN", "2526", 2) == ["CN/2526/000001", "CN/2526/000002"]
    with engine.begin() as conn:
        assert allocate_numbers(conn, "INV", "2526", 2) == ["INV/2526/000004", "INV/2526/000005"]
    assert _last(engine, "INV", "2526") == 5
    assert _last(engine, "INV", "2627") == 1


def test_rollback_returns_numbers(engine: Engine) -> None:
    with engine.begin() as conn:
        allocate_numbers(conn, "INV", "2526", 2)
    with pytest.raises(RuntimeError), engine.begin() as conn:
        assert allocate_numbers(conn, "INV", "2526", 4)[0] == "INV/2526/000003"
        raise RuntimeError("the documents were never written")
    with pytest.raises(RuntimeError), engine.begin() as conn:
        allocate_numbers(conn, "INV", "2728", 4)  # a new year's row disappears too
        raise RuntimeError("rolled back")
    assert _last(engine, "INV", "2728") is None
    with engine.begin() as conn:
        assert allocate_numbers(conn, "INV", "2526", 1) == ["INV/2526/000003"]


def test_autobegins_like_a_statement_would(engine: Engine) -> None:
    with engine.connect() as conn:
        assert allocate_numbers(conn, "INV", "2526", 1) == ["INV/2526/000001"]
        conn.rollback()
    assert _last(engine, "INV", "2526") is None


def test_format_refuses_numbers_over_16_characters() -> None:
    assert format_number("INV", "2526", 7) == "INV/2526/000007"
    with pytest.raises(ValidationError, match="16-character"):
        format_number("INVOICE", "2526", 7)


def test_concurrent_transactions_wait_and_stay_gapless(engine: Engine) -> None:
    """The second allocation blocks on the first transaction's lock and continues from its
    committed value; one that rolls back leaves no gap."""
    results: dict[str, list[str]] = {}
    first_holds = threading.Event()
    release = threading.Event()

    def first() -> None:
        with engine.begin() as conn:
            results["first"] = allocate_numbers(conn, "INV", "2526", 3)
            first_holds.set()
            release.wait(10)

    def second() -> None:
        first_holds.wait(10)
        with engine.begin() as conn:
            results["second"] = allocate_numbers(conn, "INV", "2526", 2)

    a, b = threading.Thread(target=first), threading.Thread(target=second)
    a.start()
    b.start()
    assert first_holds.wait(10)
    time.sleep(0.3)
    assert "second" not in results  # still waiting for the first transaction
    release.set()
    a.join(20)
    b.join(20)
    assert results["first"] == ["INV/2526/000001", "INV/2526/000002", "INV/2526/000003"]
    assert results["second"] == ["INV/2526/000004", "INV/2526/000005"]

    rolled, after = threading.Event(), threading.Event()

    def doomed() -> None:
        with pytest.raises(RuntimeError), engine.begin() as conn:
            allocate_numbers(conn, "INV", "2526", 5)
            rolled.set()
            after.wait(10)
            raise RuntimeError("crash before commit")

    def survivor() -> None:
        rolled.wait(10)
        with engine.begin() as conn:
            results["survivor"] = allocate_numbers(conn, "INV", "2526", 1)

    a, b = threading.Thread(target=doomed), threading.Thread(target=survivor)
    a.start()
    b.start()
    assert rolled.wait(10)
    time.sleep(0.3)
    after.set()
    a.join(20)
    b.join(20)
    assert results["survivor"] == ["INV/2526/000006"]
