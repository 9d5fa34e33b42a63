"""Mail outbox and delivery log in SQL: queue messages (deduplicated), with their attachments.

Statuses: queued (waiting, possibly after a failed attempt) -> sending (claimed) -> sent;
failed (permanent SMTP error or attempts exhausted); unknown (the sender stopped after
claiming: the relay may or may not have accepted it; an operator decides with `resend`).
Sending lives in `sender.py`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from billing_jobs.invoicing.mail.templates import render_message
from billing_jobs.ledger.rawsql import reserve_ids
from billing_jobs.ledger.schema import (
    document_deliveries,
    document_delivery_attachments,
    document_delivery_files,
)


class OutboxError(ValueError):
    """Bad input to the outbox (naive time, bad address, unknown delivery...)."""


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content: bytes
    content_type: str = "application/pdf"

    def __post_init__(self) -> None:
        # Checked at queue time: a message that cannot be built would otherwise fail only
        # after it was claimed for sending.
        if not self.filename or any(c in self.filename for c in "/\\\r\n\x00"):
            raise OutboxError(f"attachment filename {self.filename!r} is empty or unsafe")
        maintype, _, subtype = self.content_type.partition("/")
        if not maintype or not subtype:
            raise OutboxError(f"attachment content type {self.content_type!r} is not type/subtype")
        if not isinstance(self.content, bytes):
            raise OutboxError("attachment content must be bytes")


@dataclass(frozen=True, slots=True)
class FileAttachment:
    """An attachment read from `path` when the message is sent; `sha256` must still match."""

    filename: str
    path: str
    sha256: str
    content_type: str = "application/pdf"

    def __post_init__(self) -> None:
        Attachment(self.filename, b"", self.content_type)  # same filename/type checks
        if len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256):
            raise OutboxError(f"attachment sha256 {self.sha256!r} is not 64 lower-case hex")
        if not Path(self.path).is_absolute():
            raise OutboxError(f"attachment path {self.path!r} must be absolute")


@dataclass(frozen=True, slots=True)
class QueuedMail:
    """One message for `queue_messages` (same meaning as `queue_message`'s arguments)."""

    kind: str
    to: str
    subject_key: str
    context: dict[str, Any]
    lang: str = "en"
    dedupe_key: str | None = None
    document_number: str | None = None
    files: tuple[FileAttachment, ...] = ()


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff: base * 2**(attempt-1), capped; after max_attempts -> failed."""

    max_attempts: int = 6
    base: timedelta = timedelta(minutes=2)
    cap: timedelta = timedelta(hours=6)
    # A claim older than this with no result means the sender died mid-send.
    lease: timedelta = timedelta(minutes=15)

    def delay(self, attempts: int) -> timedelta:
        return min(self.cap, self.base * (2 ** max(0, attempts - 1)))


def _message_id(domain: str) -> str:
    # Short enough that the header is never folded; random, so it leaks no host or pid.
    return f"<{uuid4().hex}@{domain}>"


def _utc(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise OutboxError("`now` must be timezone-aware")
    return now.astimezone(UTC)


def check_address(addr: str) -> str:
    """The address stripped, or OutboxError when it is not one plain e-mail address."""
    addr = addr.strip()
    if addr.count("@") != 1 or any(c in addr for c in "\r\n<>,; ") or len(addr) > 320:
        raise OutboxError(f"not a single e-mail address: {addr!r}")
    return addr


def _delivery_row(
    kind: str,
    subject_key: str,
    dedupe_key: str | None,
    document_number: str | None,
    recipient: str,
    rendered: Any,
    at: datetime,
    message_domain: str,
) -> dict[str, Any]:
    """A new `queued` delivery row for a rendered message (one and many alike)."""
    return {
        "kind": kind,
        "template_key": subject_key,
        "dedupe_key": dedupe_key,
        "document_number": document_number,
        "recipient": recipient,
        "lang": rendered.lang,
        "subject": rendered.subject,
        "text_body": rendered.text,
        "html_body": rendered.html,
        # Fixed at queue time and reused by every attempt: a receiver that sees a retry of
        # a message it already accepted can recognise the duplicate by Message-ID.
        "message_id": _message_id(message_domain),
        "status": "queued",
        "attempts": 0,
        "next_attempt_at": at,
        "created_at": at,
    }


def add_attachments(conn: Connection, delivery_id: int, attachments: Iterable[Any]) -> None:
    """The attachment rows of a delivery (each item has filename, content_type and content)."""
    for att in attachments:
        conn.execute(
            sa.insert(document_delivery_attachments).values(
                delivery_id=delivery_id,
                filename=att.filename,
                content_type=att.content_type,
                content=att.content,
            )
        )


def queue_message(
    engine: Engine,
    *,
    kind: str,
    to: str,
    subject_key: str,
    context: dict[str, Any],
    attachments: Sequence[Attachment] = (),
    now: datetime,
    lang: str = "en",
    dedupe_key: str | None = None,
    document_number: str | None = None,
    message_domain: str = "paysight.local",
) -> int:
    """Render the template now (so retries send identical content) and queue it.

    `subject_key` names the template set (see `billing_jobs/invoicing/mail/templates/`). With a
    `dedupe_key`, queueing again returns the existing delivery id instead of a second mail.
    """
    at = _utc(now)
    recipient = check_address(to)
    rendered = render_message(subject_key, context, lang)
    row = _delivery_row(
        kind, subject_key, dedupe_key, document_number, recipient, rendered, at, message_domain
    )
    t = document_deliveries
    if dedupe_key is not None:
        with engine.connect() as conn:
            existing = conn.execute(sa.select(t.c.id).where(t.c.dedupe_key == dedupe_key)).scalar()
        if existing is not None:
            return int(existing)
    try:
        with engine.begin() as conn:
            new_id = conn.execute(sa.insert(t).values(**row)).inserted_primary_key[0]
            add_attachments(conn, new_id, attachments)
    except sa.exc.IntegrityError:
        if dedupe_key is None:
            raise
        # Lost a race with another process queueing the same thing: theirs wins.
        with engine.connect() as conn:
            return int(
                conn.execute(sa.select(t.c.id).where(t.c.dedupe_key == dedupe_key)).scalar_one()
            )
    return int(new_id)


def queue_messages(
    conn: Connection,
    mails: Sequence[QueuedMail],
    *,
    now: datetime,
    message_domain: str = "paysight.local",
) -> list[int]:
    """Queue many messages inside the caller's transaction (so they commit together with
    whatever the caller records, e.g. the invoice documents they carry) and return their
    delivery ids in order. A dedupe key already queued, or repeated in `mails`, maps to one
    delivery: nothing is mailed twice."""
    if not mails:
        return []
    at = _utc(now)
    t = document_deliveries
    keys = sorted({m.dedupe_key for m in mails if m.dedupe_key is not None})
    existing: dict[str, int] = {}
    for i in range(0, len(keys), 500):
        found = conn.execute(
            sa.select(t.c.dedupe_key, t.c.id).where(t.c.dedupe_key.in_(keys[i : i + 500]))
        )
        existing.update({k: int(v) for k, v in found})
    fresh: list[QueuedMail] = []
    first: dict[str, int] = {}
    slots: list[int] = []  # >= 0: an existing delivery id; < 0: -(index into fresh) - 1
    for m in mails:
        if m.dedupe_key is not None and m.dedupe_key in existing:
            slots.append(existing[m.dedupe_key])
        elif m.dedupe_key is not None and m.dedupe_key in first:
            slots.append(-first[m.dedupe_key] - 1)
        else:
            check_address(m.to)  # refuse the whole batch before anything is written
            if m.dedupe_key is not None:
                first[m.dedupe_key] = len(fresh)
            slots.append(-len(fresh) - 1)
            fresh.append(m)
    new_ids = reserve_ids(conn, "document_deliveries", len(fresh))
    rows: list[dict[str, Any]] = []
    files: list[dict[str, Any]] = []
    for new_id, m in zip(new_ids, fresh, strict=True):
        rendered = render_message(m.subject_key, m.context, m.lang)
        rows.append(
            {
                "id": new_id,
                **_delivery_row(
                    m.kind,
                    m.subject_key,
                    m.dedupe_key,
                    m.document_number,
                    check_address(m.to),
                    rendered,
                    at,
                    message_domain,
                ),
            }
        )
        files += [
            {
                "delivery_id": new_id,
                "filename": f.filename,
                "content_type": f.content_type,
                "path": f.path,
                "sha256": f.sha256,
            }
            for f in m.files
        ]
    if rows:
        conn.execute(sa.insert(t), rows)
    if files:
        conn.execute(sa.insert(document_delivery_files), files)
    return [v if v >= 0 else new_ids[-v - 1] for v in slots]


def delivery(engine: Engine, delivery_id: int) -> dict[str, Any]:
    """The log row of one delivery (without bodies)."""
    t = document_deliveries
    with engine.connect() as conn:
        row = conn.execute(sa.select(t).where(t.c.id == delivery_id)).one_or_none()
    if row is None:
        raise OutboxError(f"no delivery {delivery_id}")
    data = dict(row._mapping)
    for key in ("text_body", "html_body"):
        data.pop(key)
    return data
