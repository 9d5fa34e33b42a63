"""How the operator commands print: JSON with money in minor units for machines (`--json`);
for people, money as money (₹1,23,456.78, Indian grouping, via billing_jobs.money / Babel),
rates as percentages, and lists as aligned tables."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import typer

from billing_jobs.money import Money

LOCALE = "en_IN"


def money(minor: int | None, currency: str | None) -> str:
    """₹1,23,456.78 (Indian grouping); minor units as they are when the currency is unknown."""
    if minor is None:
        return "–"
    if not currency:
        return f"{minor} (minor units)"
    return Money(int(minor), currency).format(LOCALE)


def humanize(value: Any, currency: str | None = None) -> Any:
    """A JSON payload for people: `x_minor` becomes `x` in money of the nearest `currency`,
    `x_bp` becomes `x` as a percentage; everything else is kept."""
    if isinstance(value, list):
        return [humanize(v, currency) for v in value]
    if not isinstance(value, dict):
        return value
    cur = value.get("currency") if isinstance(value.get("currency"), str) else currency
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key.endswith("_minor") and (item is None or isinstance(item, int)):
            out[key[: -len("_minor")]] = money(item, cur)
        elif key.endswith("_bp") and isinstance(item, int):
            out[key[: -len("_bp")]] = f"{item / 100:g}%"
        else:
            out[key] = humanize(item, cur)
    return out


def emit(payload: Any, as_json: bool, title: str = "", render: Callable | None = None) -> None:
    """Print `payload`: JSON as it is (minor units), or `render(payload)` / a readable tree."""
    if as_json:
        typer.echo(json.dumps(payload, indent=2, sort_keys=True, default=str))
        return
    if title:
        typer.secho(title, bold=True)
    if render is not None:
        render(payload)
    else:
        tree(humanize(payload))


def tree(value: Any, indent: int = 0) -> None:
    pad = "  " * indent
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                typer.echo(f"{pad}{key}:")
                tree(item, indent + 1)
            else:
                typer.echo(f"{pad}{key:28} {'' if item is None else item}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            typer.echo(f"{pad}- [{i}]")
            tree(item, indent + 1)
    else:
        typer.echo(f"{pad}{value}")


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str], right: Sequence[int] = ()) -> None:
    """An aligned text table; `right` are the indexes of right-aligned (money) columns."""
    cells = [[str(h) for h in headers], *[["" if c is None else str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, r in enumerate(cells):
        line = "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        typer.echo(line.rstrip())
        if n == 0:
            typer.echo("  ".join("-" * w for w in widths))
