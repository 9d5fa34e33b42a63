"""Dunning as a YAML-configured state machine: reminders, restriction, then cancel or mark unpaid.

`dunning_actions(state, invoice, now)` only returns notification records and the next state; it
sends nothing. Steps are aligned with the payment-retry schedule (reminders carry the next retry
time; restrict/cancel wait while a retry is imminent).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

DEFAULT_CONFIG_PATH = Path(__file__).with_name("dunning.yaml")


class DunningConfigError(ValueError):
    """The dunning YAML is malformed or describes an impossible process."""


class DunningError(ValueError):
    """Bad input to the dunning state machine."""


class Action(StrEnum):
    REMIND = "remind"
    RESTRICT = "restrict"
    FINAL = "final"  # resolved to cancel or mark_unpaid by `final_action`


class FinalAction(StrEnum):
    CANCEL = "cancel"
    MARK_UNPAID = "mark_unpaid"


class DunningStatus(StrEnum):
    ACTIVE = "active"
    RESTRICTED = "restricted"
    CANCELED = "canceled"
    UNPAID = "unpaid"
    RECOVERED = "recovered"


CLOSED = frozenset({DunningStatus.CANCELED, DunningStatus.UNPAID, DunningStatus.RECOVERED})


@dataclass(frozen=True)
class Step:
    day: int
    action: Action
    template: str


@dataclass(frozen=True)
class DunningConfig:
    steps: tuple[Step, ...]
    final_action: FinalAction = FinalAction.CANCEL
    hold_terminal_for_retry: timedelta = timedelta(hours=48)
    customer_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def for_customer(self, customer_id: str) -> DunningConfig:
        raw = self.customer_overrides.get(customer_id)
        if not raw:
            return self
        return _parse(
            {**_dump(self), **raw, "customer_overrides": {}}, source=f"override for {customer_id}"
        )


def _dump(cfg: DunningConfig) -> dict[str, Any]:
    return {
        "steps": [
            {"day": s.day, "action": s.action.value, "template": s.template} for s in cfg.steps
        ],
        "final_action": cfg.final_action.value,
        "hold_terminal_for_retry_hours": cfg.hold_terminal_for_retry.total_seconds() / 3600,
    }


def _parse(raw: Any, source: str) -> DunningConfig:
    if not isinstance(raw, Mapping):
        raise DunningConfigError(f"{source}: expected a mapping at the top level")
    unknown = set(raw) - {
        "steps",
        "final_action",
        "hold_terminal_for_retry_hours",
        "customer_overrides",
    }
    if unknown:
        raise DunningConfigError(f"{source}: unknown keys {sorted(unknown)}")
    steps_raw = raw.get("steps")
    if not isinstance(steps_raw, list) or not steps_raw:
        raise DunningConfigError(f"{source}: 'steps' must be a non-empty list")
    steps: list[Step] = []
    for i, s in enumerate(steps_raw):
        if not isinstance(s, Mapping) or set(s) != {"day", "action", "template"}:
            raise DunningConfigError(f"{source}: step {i} needs exactly day, action and template")
        day = s["day"]
        if not isinstance(day, int) or isinstance(day, bool) or day < 0:
            raise DunningConfigError(
                f"{source}: step {i} day must be a non-negative integer, got {day!r}"
            )
        try:
            action = Action(s["action"])
        except ValueError:
            raise DunningConfigError(
                f"{source}: step {i} action {s['action']!r} is not one of {[a.value for a in Action]}"
            ) from None
        if not isinstance(s["template"], str) or not s["template"].strip():
            raise DunningConfigError(f"{source}: step {i} template must be a non-empty string")
        steps.append(Step(day, action, s["template"]))
    days = [s.day for s in steps]
    if days != sorted(set(days)):
        raise DunningConfigError(f"{source}: step days must be strictly increasing, got {days}")
    finals = [i for i, s in enumerate(steps) if s.action is Action.FINAL]
    if finals and finals != [len(steps) - 1]:
        raise DunningConfigError(f"{source}: the 'final' action may appear once, as the last step")
    try:
        final_action = FinalAction(raw.get("final_action", "cancel"))
    except ValueError:
        raise DunningConfigError(f"{source}: final_action must be cancel or mark_unpaid") from None
    hold = raw.get("hold_terminal_for_retry_hours", 48)
    if not isinstance(hold, int | float) or hold < 0:
        raise DunningConfigError(f"{source}: hold_terminal_for_retry_hours must be >= 0")
    overrides = raw.get("customer_overrides") or {}
    if not isinstance(overrides, Mapping):
        raise DunningConfigError(f"{source}: customer_overrides must be a mapping")
    cfg = DunningConfig(tuple(steps), final_action, timedelta(hours=hold), dict(overrides))
    for cid in overrides:
        cfg.for_customer(cid)  # validate every override now, not at 3 a.m. in the dunning job
    return cfg


def load_config(path: str | Path | None = None, text: str | None = None) -> DunningConfig:
    """Read the YAML (the packaged defaults when neither `path` nor `text` is given)."""
    source = str(path or DEFAULT_CONFIG_PATH) if text is None else "<text>"
    try:
        raw = yaml.safe_load(
            text if text is not None else Path(path or DEFAULT_CONFIG_PATH).read_text()
        )
    except yaml.YAMLError as e:
        raise DunningConfigError(f"{source}: not valid YAML ({e})") from None
    return _parse(raw, source)


@dataclass(frozen=True)
class DunningInvoice:
    invoice_id: str
    customer_id: str
    amount_minor: int
    currency: str
    paid: bool = False


@dataclass(frozen=True)
class DunningState:
    invoice_id: str
    customer_id: str
    started_at: datetime  # the first failed payment
    status: DunningStatus = DunningStatus.ACTIVE
    done_days: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.started_at.tzinfo is None:
            raise DunningError("started_at must be timezone-aware")


@dataclass(frozen=True)
class Notification:
    """A record of what to tell whom; the mailer decides how to send it."""

    kind: str  # remind | restrict | cancel | mark_unpaid | recovered
    customer_id: str
    invoice_id: str
    due_at: datetime
    template_key: str
    amount_minor: int
    currency: str
    next_retry_at: datetime | None = None


@dataclass(frozen=True)
class DunningResult:
    state: DunningState
    notifications: tuple[Notification, ...]


def start_dunning(invoice: DunningInvoice, failed_at: datetime) -> DunningState:
    return DunningState(invoice.invoice_id, invoice.customer_id, failed_at)


def dunning_actions(
    state: DunningState,
    invoice: DunningInvoice,
    now: datetime,
    config: DunningConfig | None = None,
    retry_times: Sequence[datetime] = (),
) -> DunningResult:
    """Every step due by `now` that has not been done yet (catching up if a run was missed),
    and the new state. Idempotent: feeding the returned state back yields no repeats."""
    if now.tzinfo is None:
        raise DunningError("now must be timezone-aware")
    if (state.invoice_id, state.customer_id) != (invoice.invoice_id, invoice.customer_id):
        raise DunningError(f"state is for {state.invoice_id}, invoice is {invoice.invoice_id}")
    if state.status in CLOSED:
        return DunningResult(state, ())
    cfg = (config or load_config()).for_customer(state.customer_id)

    def note(kind: str, due: datetime, template: str) -> Notification:
        upcoming = [t for t in sorted(retry_times) if t > due]
        return Notification(
            kind, state.customer_id, state.invoice_id, due, template,
            invoice.amount_minor, invoice.currency, upcoming[0] if upcoming else None,
        )  # fmt: skip

    if invoice.paid:
        recovered = replace(state, status=DunningStatus.RECOVERED)
        return DunningResult(recovered, (note("recovered", now, "dunning.recovered"),))
    out: list[Notification] = []
    status, done = state.status, list(state.done_days)
    for step in cfg.steps:
        due = state.started_at + timedelta(days=step.day)
        if step.day in done or due > now:
            continue
        if step.action is not Action.REMIND and any(
            due <= t <= due + cfg.hold_terminal_for_retry and t > now for t in retry_times
        ):
            break  # a retry is about to run; cut nothing off until it has
        if step.action is Action.REMIND:
            out.append(note("remind", due, step.template))
        elif step.action is Action.RESTRICT:
            status = DunningStatus.RESTRICTED
            out.append(note("restrict", due, step.template))
        else:
            final = cfg.final_action
            status = DunningStatus.CANCELED if final is FinalAction.CANCEL else DunningStatus.UNPAID
            out.append(note(final.value, due, step.template))
        done.append(step.day)
        if status in CLOSED:
            break
    return DunningResult(replace(state, status=status, done_days=tuple(done)), tuple(out))
