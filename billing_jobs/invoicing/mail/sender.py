"""Sending the outbox: claim due deliveries, send them over one SMTP session, record each
outcome exactly once, reap stale claims, and re-send on request."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from billing_jobs.invoicing.mail.outbox import (
    Attachment,
    OutboxError,
    RetryPolicy,
    _message_id,
    _utc,
    add_attachments,
)
from billing_jobs.invoicing.mail.smtp import SmtpSendError, SmtpSession, SmtpSettings
from billing_jobs.ledger.schema import (
    document_deliveries,
    document_delivery_attachments,
    document_delivery_files,
)


@dataclass(slots=True)
class SendReport:
    sent: list[int] = field(default_factory=list)
    retrying: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    unknown: list[int] = field(default_factory=list)


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


def _claim(engine: Engine, delivery_id: int, at: datetime) -> str | None:
    """Claim a due delivery for sending; its claim token, or None when another worker has it."""
    t = document_deliveries
    token = str(uuid4())
    with engine.begin() as conn:
        claimed = conn.execute(
            sa.update(t)
            .where(t.c.id == delivery_id, t.c.status == "queued", t.c.next_attempt_at <= at)
            .values(status="sending", claim_token=token, claimed_at=at, attempts=t.c.attempts + 1)
        ).rowcount
    return token if claimed == 1 else None


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
        token = _claim(engine, delivery_id, at)
        if token is None:
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
        copied = conn.execute(
            sa.select(document_delivery_attachments).where(
                document_delivery_attachments.c.delivery_id == delivery_id
            )
        ).all()
        add_attachments(conn, new_id, copied)
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
