"""Ledger engines: SQLite (WAL, foreign keys, BEGIN IMMEDIATE) or PostgreSQL, and migrations."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
DEFAULT_URL = "sqlite:///data/ledger.sqlite"


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA synchronous=FULL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        # Take the write lock up front: read-then-write (due subscriptions, the invoice
        # number sequence) can then never interleave with another billing process.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str | None = None, **kwargs: object) -> Engine:
    """Engine for `url` (default PAYSIGHT_LEDGER_URL or data/ledger.sqlite)."""
    url = url or os.environ.get("PAYSIGHT_LEDGER_URL") or DEFAULT_URL
    if url.startswith("sqlite") and ":memory:" not in url and url.count("/") >= 3:
        path = url.split("///", 1)[1]
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **kwargs)  # type: ignore[arg-type]
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    return engine


def upgrade_ledger(url_or_engine: str | Engine, revision: str = "head") -> Engine:
    """Run the Alembic migrations programmatically and return the engine."""
    engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    return engine
