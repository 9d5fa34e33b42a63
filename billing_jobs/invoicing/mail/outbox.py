"""Mail outbox and delivery log in SQL: queue, send due messages with backoff, resend.

Statuses: queued (waiting, possibly after a failed attempt) -> sending (claimed) -> sent;
failed (permanent SMTP error or attempts exhausted); unknown (the sender stopped after
claiming: the relay may or may not have accepted it; an operator decides with `resend`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from billing_jobs.invoicing.mail.smtp import SmtpSendError, SmtpSession, SmtpSettings
from billing_jobs.invoicing.mail.templates import render_message
from billing_jobs.ledger.rawsql import reserve_ids


class OutboxError(ValueError):
    """Bad input to the outbox (naive time, bad address, unknown delivery...)."""


class UTCDateTime(sa.types.TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the offset otherwise)."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise OutboxError("datetimes must be timezone-aware")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


metadata = sa.MetaData()

document_deliveries = sa.Table(
    "document_deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("template_key", sa.String(64), nullable=False),
    # Queueing the same thing twice (a retried invoice run) must not mail it twice.
    sa.Column("dedupe_key", sa.String(200), nullable=True, unique=True),
    sa.Column("document_number", sa.String(16), nullable=True),
    sa.Column("recipient", sa.String(320), nullable=False),
    sa.Column("lang", sa.String(8), nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("text_body", sa.Text, nullable=False),
    sa.Column("html_body", sa.Text, nullable=False),
    sa.Column("message_id", sa.String(255), nullable=False, unique=True),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", UTCDateTime, nullable=True),
    sa.Column("claim_token", sa.String(36), nullable=True),
    sa.Column("claimed_at", UTCDateTime, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime, nullable=True),
    sa.Column("resend_of", sa.Integer, sa.ForeignKey("document_deliveries.id"), nullable=True),
    sa.Index("ix_document_deliveries_due", "status", "next_attempt_at"),
)

document_delivery_attachments = sa.Table(
    "document_delivery_attachments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("delivery_id", sa.Integer, sa.ForeignKey("document_deliveries.id"), nullable=False),
    sa.Column("filename", sa.String(200), nullable=False),
    sa.Column("content_type", sa.String(100), nullable=False),
    sa.Column("content", sa.LargeBinary, nullable=False),
)


# Attachments kept by reference: a stored invoice PDF is attached from the document store at
# send time instead of being copied into the ledger (100,000 invoices would add gigabytes).
# The hash pins the content queued, so a file changed or lost later fails loudly instead of
# mailing something else.
document_delivery_files = sa.Table(
    "document_delivery_files",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("delivery_id", sa.Integer, sa.ForeignKey("document_deliveries.id"), nullable=False),
    sa.Column("filename", sa.String(200), nullable=False),
    sa.Column("content_type", sa.String(100), nullable=False),
    sa.Column("path", sa.String(500), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Index("ix_document_delivery_files_delivery", "delivery_id"),
)


def ensure_delivery_tables(engine: Engine | Connection) -> None:
    metadata.create_all(engine)


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


@dataclass(slots=True)
class SendReport:
    sent: list[int] = field(default_factory=list)
    retrying: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    unknown: list[int] = field(default_factory=list)


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
            for att in attachments:
                conn.execute(
                    sa.insert(document_delivery_attachments).values(
                        delivery_id=new_id,
                        filename=att.filename,
                        content_type=att.content_type,
                        content=att.content,
                    )
                )
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


def _build_email(row: Any, attachments: list[Any], sender: str, now: datetime) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = row.recipient
    msg["Subject"] = row.subject
    msg["Message-ID"] = row.message_id
    msg["Date"] = format_datetime(now)
    msg.set_content(row.text_body)
    msg.add_alternative(row.html_body, subtype="html")
    for att in attachments:
        maintype, _, subtype = att.content_type.partition("/")
        msg.add_attachment(att.content, maintype=maintype, subtype=subtype, filename=att.filename)
    return msg


def _attachments(conn: Connection, delivery_id: int) -> list[Attachment]:
    """Stored attachments, then file attachments read now and checked against their hash."""
    a, f = document_delivery_attachments, document_delivery_files
    out = [
        Attachment(r.filename, r.content, r.content_type)
        for r in conn.execute(sa.select(a).where(a.c.delivery_id == delivery_id).order_by(a.c.id))
    ]
    for r in conn.execute(sa.select(f).where(f.c.delivery_id == delivery_id).order_by(f.c.id)):
        try:
            content = Path(r.path).read_bytes()
        except OSError as exc:
            raise OutboxError(
                f"attachment {r.filename} of delivery {delivery_id} cannot be read from "
                f"{r.path}: {exc.strerror or exc}; restore the document and resend"
            ) from exc
        if hashlib.sha256(content).hexdigest() != r.sha256:
            raise OutboxError(
                f"attachment {r.filename} of delivery {delivery_id} at {r.path} no longer "
                f"matches the sha256 it was queued with; it was not sent"
            )
        out.append(Attachment(r.filename, content, r.content_type))
    return out


def _reap_stale_claims(engine: Engine, at: datetime, policy: RetryPolicy) -> list[int]:
    t = document_deliveries
    with engine.begin() as conn:
        stale = [
            r.id
            for r in conn.execute(
                sa.select(t.c.id).where(t.c.status == "sending", t.c.claimed_at < at - policy.lease)
            )
        ]
        for delivery_id in stale:
            conn.execute(
                sa.update(t)
                .where(t.c.id == delivery_id, t.c.status == "sending")
                .values(
                    status="unknown",
                    last_error=(
                        "sender stopped after claiming this message; the relay may have "
                        "accepted it. Check the relay log for the Message-ID and use resend() "
                        "only if it was not delivered."
                    ),
                )
            )
    return stale


def send_due(
    engine: Engine,
    now: datetime,
    smtp: SmtpSettings,
    *,
    limit: int = 100,
    policy: RetryPolicy = RetryPolicy(),
    transport: Callable[[SmtpSettings, EmailMessage], None] | None = None,
) -> SendReport:
    """Send every queued message whose next attempt is due at `now`.

    Exactly-once: each row is claimed by a conditional UPDATE (queued -> sending) committed
    before the SMTP conversation, so two workers never send the same row. If this process dies
    after the relay accepted the message but before 'sent' is written, the row stays
    'sending'; once its lease expires it becomes 'unknown' and is NOT retried automatically.
    We prefer a visible "maybe not delivered" that an operator resolves with `resend()` over
    a silent duplicate invoice mail; the stable Message-ID lets receivers dedupe the rare
    retry after a lost SMTP reply.

    Messages go over one reused SMTP connection (`SmtpSession`) unless `transport` is given.
    """
    if transport is not None:
        return _send_due(engine, now, smtp, limit, policy, transport)
    with SmtpSession(smtp) as session:
        return _send_due(engine, now, smtp, limit, policy, lambda _s, m: session.send(m))


def _send_due(
    engine: Engine,
    now: datetime,
    smtp: SmtpSettings,
    limit: int,
    policy: RetryPolicy,
    transport: Callable[[SmtpSettings, EmailMessage], None],
) -> SendReport:
    at = _utc(now)
    t = document_deliveries
    report = SendReport(unknown=_reap_stale_claims(engine, at, policy))
    with engine.connect() as conn:
        due = [
            r.id
            for r in conn.execute(
                sa.select(t.c.id)
                .where(t.c.status == "queued", t.c.next_attempt_at <= at)
                .order_by(t.c.next_attempt_at, t.c.id)
                .limit(limit)
            )
        ]
    for delivery_id in due:
        token = str(uuid4())
        with engine.begin() as conn:
            claimed = conn.execute(
                sa.update(t)
                .where(t.c.id == delivery_id, t.c.status == "queued", t.c.next_attempt_at <= at)
                .values(
                    status="sending",
                    claim_token=token,
                    claimed_at=at,
                    attempts=t.c.attempts + 1,
                )
            ).rowcount
        if claimed != 1:
            continue  # another worker got it first
        with engine.connect() as conn:
            row = conn.execute(sa.select(t).where(t.c.id == delivery_id)).one()
            try:
                atts = _attachments(conn, delivery_id)
            except OutboxError as exc:
                missing: OutboxError | None = exc
            else:
                missing = None
        mine = sa.and_(t.c.id == delivery_id, t.c.claim_token == token)
        if missing is not None:
            # Retrying cannot bring a lost or altered document back: fail it for an operator.
            with engine.begin() as conn:
                conn.execute(
                    sa.update(t)
                    .where(mine)
                    .values(
                        status="failed",
                        next_attempt_at=None,
                        claim_token=None,
                        last_error=str(missing)[:2000],
                    )
                )
            report.failed.append(delivery_id)
            continue
        try:
            transport(smtp, _build_email(row, atts, smtp.sender, at))
        except SmtpSendError as exc:
            give_up = exc.permanent or row.attempts >= policy.max_attempts
            values: dict[str, Any] = {"last_error": str(exc)[:2000], "claim_token": None}
            if give_up:
                values |= {"status": "failed", "next_attempt_at": None}
                report.failed.append(delivery_id)
            else:
                values |= {"status": "queued", "next_attempt_at": at + policy.delay(row.attempts)}
                report.retrying.append(delivery_id)
            with engine.begin() as conn:
                conn.execute(sa.update(t).where(mine).values(**values))
            continue
        with engine.begin() as conn:
            conn.execute(
                sa.update(t)
                .where(mine)
                .values(status="sent", sent_at=at, claim_token=None, next_attempt_at=None)
            )
        report.sent.append(delivery_id)
    return report


def resend(engine: Engine, delivery_id: int, now: datetime, *, reason: str) -> int:
    """Operator re-send: a new delivery (new Message-ID) copying content and attachments,
    linked to the original by `resend_of`. The original's log is left untouched."""
    at = _utc(now)
    if not reason.strip():
        raise OutboxError("a resend needs a reason for the log")
    t = document_deliveries
    with engine.begin() as conn:
        row = conn.execute(sa.select(t).where(t.c.id == delivery_id)).one_or_none()
        if row is None:
            raise OutboxError(f"no delivery {delivery_id}")
        if row.status in ("queued", "sending"):
            raise OutboxError(f"delivery {delivery_id} is still {row.status}; nothing to resend")
        domain = row.message_id.rsplit("@", 1)[-1].rstrip(">")
        new_id = conn.execute(
            sa.insert(t).values(
                kind=row.kind,
                template_key=row.template_key,
                dedupe_key=None,
                document_number=row.document_number,
                recipient=row.recipient,
                lang=row.lang,
                subject=row.subject,
                text_body=row.text_body,
                html_body=row.html_body,
                message_id=_message_id(domain),
                status="queued",
                attempts=0,
                next_attempt_at=at,
                created_at=at,
                last_error=f"resend of {delivery_id}: {reason.strip()}"[:2000],
                resend_of=delivery_id,
            )
        ).inserted_primary_key[0]
        for att in conn.execute(
            sa.select(document_delivery_attachments).where(
                document_delivery_attachments.c.delivery_id == delivery_id
            )
        ):
            conn.execute(
                sa.insert(document_delivery_attachments).values(
                    delivery_id=new_id,
                    filename=att.filename,
                    content_type=att.content_type,
                    content=att.content,
                )
            )
        f = document_delivery_files
        for ref in conn.execute(sa.select(f).where(f.c.delivery_id == delivery_id)):
            conn.execute(
                sa.insert(f).values(
                    delivery_id=new_id,
                    filename=ref.filename,
                    content_type=ref.content_type,
                    path=ref.path,
                    sha256=ref.sha256,
                )
            )
    return int(new_id)


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
