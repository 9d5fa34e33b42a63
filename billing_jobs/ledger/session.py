"""Accept an Engine, Connection or ORM Session wherever the API takes a ledger target."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Union

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

Target = Union[Engine, Connection, Session]  # noqa: UP007 - used at runtime in isinstance


@contextmanager
def write_conn(target: Target) -> Iterator[Connection]:
    """A connection inside a transaction: our own (committed on success) for an Engine, the
    caller's for a Connection or Session (the caller commits)."""
    if isinstance(target, Engine):
        with target.begin() as conn:
            yield conn
    elif isinstance(target, Connection):
        if target.in_transaction():
            yield target
        else:
            with target.begin():
                yield target
    elif isinstance(target, Session):
        yield target.connection()
    else:
        raise TypeError(f"expected an Engine, Connection or Session, got {type(target).__name__}")


def engine_of(target: Target) -> Engine:
    """The engine behind a target."""
    if isinstance(target, Engine):
        return target
    if isinstance(target, Connection):
        return target.engine
    bind = target.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine
