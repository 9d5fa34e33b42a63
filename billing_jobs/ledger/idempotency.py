"""Idempotency records: replay the stored response for a repeated key, refuse a reused key."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from billing_jobs.errors import IdempotencyConflictError
from billing_jobs.ledger import schema as s


def run_idempotent(
    conn: Connection,
    key: str | None,
    scope: str,
    request: dict[str, Any],
    now: datetime,
    fn: Callable[[], dict[str, Any]],
) -> dict[str, Any]:
    """Call fn() once per key in the caller's transaction; later calls return its result."""
    if key is None:
        return fn()
    digest = hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()
    t = s.idempotency_records
    row = conn.execute(select(t).where(t.c.key == key).with_for_update()).first()
    if row is not None:
        if row.scope != scope or row.request_hash != digest:
            raise IdempotencyConflictError(
                f"idempotency key {key!r} was already used for a different {row.scope} request"
            )
        return json.loads(row.response_json)
    result = fn()
    conn.execute(
        insert(t).values(
            key=key,
            scope=scope,
            request_hash=digest,
            response_json=json.dumps(result, default=str),
            created_at=now,
        )
    )
    return result
