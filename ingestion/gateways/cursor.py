"""Time-ordered "since" cursors shared by adapters: `"{created}:{id,id,...}"` survives ties and order.

Gateways list newest-first (Stripe) or oldest-first (localstripe, Razorpay with `from`); a cursor
holding the last timestamp plus the ids already seen at that timestamp works with either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from billing_jobs.payments.gateway import GatewayError

T = TypeVar("T")


def parse_cursor(cursor: str | None) -> tuple[int, frozenset[str]]:
    if not cursor:
        return 0, frozenset()
    ts, sep, ids = cursor.partition(":")
    if not sep or not ts.isdigit():
        raise GatewayError(f"malformed cursor {cursor!r}; expected '<unix ts>:<ids>'")
    return int(ts), frozenset(i for i in ids.split(",") if i)


def page_since(
    objects: Iterable[T],
    cursor: str | None,
    limit: int,
    created: Callable[[T], int],
    ident: Callable[[T], str],
) -> tuple[list[T], str | None]:
    """Up to `limit` objects after `cursor`, oldest first, and the cursor to pass next time."""
    if limit <= 0:
        raise GatewayError(f"limit must be positive, got {limit}")
    since, seen = parse_cursor(cursor)
    fresh = sorted(
        (
            o
            for o in objects
            if created(o) > since or (created(o) == since and ident(o) not in seen)
        ),
        key=lambda o: (created(o), ident(o)),
    )
    items = fresh[:limit]
    if not items:
        return [], cursor
    last_ts = created(items[-1])
    same = {ident(o) for o in items if created(o) == last_ts}
    if last_ts == since:
        same |= seen
    return items, f"{last_ts}:{','.join(sorted(same))}"
