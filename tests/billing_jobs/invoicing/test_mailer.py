"""Mailer against a real aiosmtpd server on 127.0.0.1: content, retries, exactly-once, resend."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from billing_jobs.invoicing.documents import render_pdf
from billing_jobs.invoicing.documents.sample import sample_invoice
from billing_jobs.invoicing.mail import (
    Attachment,
    MailConfigError,
    MailTemplateError,
    OutboxError,
    RetryPolicy,
    SmtpSession,
    SmtpSettings,
    delivery,
    queue_document,
    queue_message,
    resend,
    send_due,
    send_message,
)
from billing_jobs.ledger import upgrade_ledger
from billing_jobs.ledger.schema import document_deliveries
from tests.smtp_relay import Recorder, free_port

NOW = datetime(2025, 10, 3, 9, 30, tzinfo=UTC)


@pytest.fixture
def engine(tmp_path: Path):
    eng = sa.create_engine(f"sqlite:///{tmp_path / 'outbox.sqlite'}", connect_args={"timeout": 30})
    upgrade_ledger(eng)  # the outbox lives in the ledger
    yield eng
    eng.dispose()


@pytest.fixture(scope="module")
def invoice_and_pdf():
    doc = sample_invoice(31, 5, einvoice=False)
    return doc, render_pdf(doc)


def _status(engine, delivery_id: int) -> dict:
    return delivery(engine, delivery_id)


def test_smtp_url_parsing() -> None:
    s = SmtpSettings.from_url("smtp://user:p%40ss@127.0.0.1:1025?starttls=1&from=bill@x.in")
    assert (s.host, s.port, s.username, s.password, s.starttls, s.sender) == (
        "127.0.0.1",
        1025,
        "user",
        "p@ss",
        True,
        "bill@x.in",
    )
    assert "p@ss" not in repr(s)
    tls = SmtpSettings.from_url("smtps://u:p@127.0.0.1")
    assert tls.implicit_tls and tls.port == 465 and not tls.starttls
    assert SmtpSettings.from_url("smtp://127.0.0.1", starttls=True).starttls
    for bad in ("http://127.0.0.1", "smtp://", "smtp://127.0.0.1:99999", "smtp://h?timeout=x"):
        with pytest.raises(MailConfigError):
            SmtpSettings.from_url(bad)


def test_invoice_mail_has_recipient_subject_bodies_and_pdf(
    smtp_server, engine, invoice_and_pdf
) -> None:
    server, settings = smtp_server
    doc, pdf = invoice_and_pdf
    delivery_id = queue_document(engine, doc, pdf, to="accounts@anand.test", now=NOW)
    report = send_due(engine, NOW, settings)
    assert report.sent == [delivery_id]
    assert len(server.messages) == 1
    msg = server.messages[0]
    assert server.envelopes[0] == ("billing@paysight.test", ["accounts@anand.test"])
    assert msg["To"] == "accounts@anand.test"
    assert msg["Subject"].strip() == f"Tax invoice {doc.number} from {doc.supplier.name}"
    text = msg.get_body(preferencelist=("plain",)).get_content()
    html = msg.get_body(preferencelist=("html",)).get_content()
    assert doc.recipient.name in text and doc.number in text and "₹" in text
    assert f"<b>{doc.number}</b>" in html
    [att] = list(msg.iter_attachments())
    assert att.get_filename() == doc.number.replace("/", "_") + ".pdf"
    assert att.get_content_type() == "application/pdf"
    assert att.get_content() == pdf
    row = _status(engine, delivery_id)
    assert row["status"] == "sent" and row["attempts"] == 1 and row["sent_at"] == NOW
    assert row["message_id"] == msg["Message-ID"].strip()


def test_hindi_mail(smtp_server, engine, invoice_and_pdf) -> None:
    server, settings = smtp_server
    doc, pdf = invoice_and_pdf
    queue_document(engine, doc, pdf, to="a@b.test", now=NOW, lang="hi")
    send_due(engine, NOW, settings)
    msg = server.messages[0]
    assert msg["Subject"].strip() == f"{doc.supplier.name} का कर बीजक {doc.number}"
    assert "संलग्न" in msg.get_body(preferencelist=("plain",)).get_content()


def test_queueing_the_same_document_twice_sends_once(smtp_server, engine, invoice_and_pdf) -> None:
    server, settings = smtp_server
    doc, pdf = invoice_and_pdf
    first = queue_document(engine, doc, pdf, to="a@b.test", now=NOW)
    again = queue_document(engine, doc, pdf, to=" A@B.test ", now=NOW + timedelta(hours=1))
    assert first == again
    send_due(engine, NOW, settings)
    send_due(engine, NOW + timedelta(days=1), settings)
    assert len(server.messages) == 1


def test_451_is_retried_with_backoff_and_logged(smtp_server, engine) -> None:
    server, settings = smtp_server
    server.fail_next = ["451 4.3.0 try again later"]
    policy = RetryPolicy(max_attempts=4, base=timedelta(minutes=2))
    delivery_id = _queue_reminder(engine)
    report = send_due(engine, NOW, settings, policy=policy)
    assert report.retrying == [delivery_id] and not server.messages
    row = _status(engine, delivery_id)
    assert row["status"] == "queued" and row["attempts"] == 1
    assert "451" in row["last_error"]
    assert row["next_attempt_at"] == NOW + timedelta(minutes=2)
    # not due yet
    assert send_due(engine, NOW + timedelta(minutes=1), settings, policy=policy).sent == []
    assert send_due(engine, NOW + timedelta(minutes=2), settings, policy=policy).sent == [
        delivery_id
    ]
    row = _status(engine, delivery_id)
    assert row["status"] == "sent" and row["attempts"] == 2
    assert len(server.messages) == 1


def test_550_fails_permanently_and_is_logged(smtp_server, engine) -> None:
    server, settings = smtp_server
    server.fail_next = ["550 5.1.1 mailbox unavailable"]
    delivery_id = _queue_reminder(engine)
    report = send_due(engine, NOW, settings)
    assert report.failed == [delivery_id]
    row = _status(engine, delivery_id)
    assert row["status"] == "failed" and "550" in row["last_error"]
    assert row["next_attempt_at"] is None
    assert send_due(engine, NOW + timedelta(days=2), settings).sent == []
    assert not server.messages


def test_connection_refused_backs_off_then_gives_up(engine) -> None:
    settings = SmtpSettings.from_url(f"smtp://127.0.0.1:{free_port()}?timeout=2")
    policy = RetryPolicy(max_attempts=3, base=timedelta(minutes=1), cap=timedelta(minutes=3))
    delivery_id = _queue_reminder(engine)
    at = NOW
    delays = []
    for _ in range(3):
        send_due(engine, at, settings, policy=policy)
        row = _status(engine, delivery_id)
        assert "ConnectionRefusedError" in row["last_error"]
        if row["status"] == "queued":
            delays.append(row["next_attempt_at"] - at)
            at = row["next_attempt_at"]
    assert delays == [timedelta(minutes=1), timedelta(minutes=2)]
    row = _status(engine, delivery_id)
    assert row["status"] == "failed" and row["attempts"] == 3


def test_backoff_is_capped() -> None:
    policy = RetryPolicy(base=timedelta(minutes=2), cap=timedelta(hours=1))
    assert [policy.delay(n) for n in (1, 2, 3)] == [timedelta(minutes=m) for m in (2, 4, 8)]
    assert policy.delay(20) == timedelta(hours=1)


def _queue_many(engine, n: int) -> list[int]:
    return [
        queue_message(
            engine,
            kind="dunning",
            to=f"accounts{i}@anand.test",
            subject_key="dunning_reminder",
            context=_reminder_context(),
            now=NOW,
        )
        for i in range(n)
    ]


def test_two_concurrent_senders_never_send_twice(smtp_server, engine) -> None:
    server, settings = smtp_server
    ids = _queue_many(engine, 16)
    barrier = threading.Barrier(2)
    reports = []

    def worker() -> None:
        barrier.wait()
        reports.append(send_due(engine, NOW, settings))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    sent = [i for r in reports for i in r.sent]
    assert sorted(sent) == sorted(ids) and len(set(sent)) == len(sent)
    assert len(server.messages) == 16
    assert len({m["Message-ID"] for m in server.messages}) == 16
    assert send_due(engine, NOW + timedelta(days=1), settings).sent == []
    assert len(server.messages) == 16


class Crash(BaseException):
    """Stands in for the process dying (not an error send_due may catch)."""


def test_crash_after_smtp_accept_is_not_silently_resent(smtp_server, engine) -> None:
    server, settings = smtp_server
    policy = RetryPolicy(lease=timedelta(minutes=15))
    delivery_id = _queue_reminder(engine)

    def accept_then_die(s, message) -> None:
        send_message(s, message)
        raise Crash

    with pytest.raises(Crash):
        send_due(engine, NOW, settings, policy=policy, transport=accept_then_die)
    assert len(server.messages) == 1
    assert _status(engine, delivery_id)["status"] == "sending"
    # a restarted worker, within and after the lease, never sends it again on its own
    assert send_due(engine, NOW + timedelta(minutes=5), settings, policy=policy).sent == []
    report = send_due(engine, NOW + timedelta(minutes=16), settings, policy=policy)
    assert report.unknown == [delivery_id] and report.sent == []
    row = _status(engine, delivery_id)
    assert row["status"] == "unknown" and "resend()" in row["last_error"]
    assert len(server.messages) == 1
    # the operator decides to re-send
    new_id = resend(engine, delivery_id, NOW + timedelta(hours=1), reason="customer asked")
    assert send_due(engine, NOW + timedelta(hours=1), settings).sent == [new_id]
    assert len(server.messages) == 2
    assert server.messages[0]["Message-ID"] != server.messages[1]["Message-ID"]
    assert _status(engine, new_id)["resend_of"] == delivery_id
    assert _status(engine, delivery_id)["status"] == "unknown"  # history kept


def test_resend_copies_attachments_and_refuses_in_flight(
    smtp_server, engine, invoice_and_pdf
) -> None:
    server, settings = smtp_server
    doc, pdf = invoice_and_pdf
    first = queue_document(engine, doc, pdf, to="a@b.test", now=NOW)
    with pytest.raises(OutboxError, match="still queued"):
        resend(engine, first, NOW, reason="x")
    send_due(engine, NOW, settings)
    with pytest.raises(OutboxError, match="reason"):
        resend(engine, first, NOW, reason=" ")
    with pytest.raises(OutboxError, match="no delivery"):
        resend(engine, 999, NOW, reason="x")
    again = resend(engine, first, NOW + timedelta(days=3), reason="lost in spam")
    send_due(engine, NOW + timedelta(days=3), settings)
    assert again != first and len(server.messages) == 2
    assert next(iter(server.messages[1].iter_attachments())).get_content() == pdf


def _reminder_context(**extra) -> dict:
    return {
        "customer_name": "Anand Traders LLP",
        "document_number": "INV/2526/00031",
        "amount": "₹1,18,000.00",
        "days_overdue": 3,
        "pay_url": "http://127.0.0.1/pay/abc",
        "supplier_name": "Paysight Demo",
        **extra,
    }


def _queue_reminder(engine, **extra) -> int:
    return queue_message(
        engine,
        kind="dunning",
        to="accounts@anand.test",
        subject_key="dunning_reminder",
        context=_reminder_context(**extra),
        now=NOW,
    )


def test_dunning_and_pre_debit_go_through_the_same_mailer(smtp_server, engine) -> None:
    server, settings = smtp_server
    _queue_reminder(engine)
    queue_message(
        engine,
        kind="pre_debit",
        to="payer@upi.test",
        subject_key="pre_debit_notification",
        context={
            "customer_name": "Meera",
            "amount": "₹499.00",
            "debit_date": "5 Oct 2025",
            "mandate_ref": "UPI-MANDATE-77",
            "method": "UPI AutoPay",
            "supplier_name": "Paysight Demo",
        },
        attachments=[Attachment("notice.txt", b"hello", "text/plain")],
        now=NOW,
        lang="hi",
    )
    send_due(engine, NOW, settings)
    subjects = sorted(m["Subject"].strip() for m in server.messages)
    assert subjects == [
        "5 Oct 2025 को ₹499.00 की आगामी कटौती",
        "Payment reminder: invoice INV/2526/00031 is 3 days overdue",
    ]


def test_hostile_context_is_escaped_and_cannot_inject_headers(smtp_server, engine) -> None:
    server, settings = smtp_server
    _queue_reminder(
        engine,
        customer_name="<script>alert(1)</script>",
        document_number="X\r\nBcc: victim@evil.test",
    )
    send_due(engine, NOW, settings)
    msg = server.messages[0]
    assert msg["Bcc"] is None
    assert server.envelopes[0][1] == ["accounts@anand.test"]
    html = msg.get_body(preferencelist=("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_bad_input_is_refused_before_anything_is_queued(engine) -> None:
    with pytest.raises(MailTemplateError, match="pay_url"):
        queue_message(
            engine,
            kind="dunning",
            to="a@b.test",
            subject_key="dunning_reminder",
            context={k: v for k, v in _reminder_context().items() if k != "pay_url"},
            now=NOW,
        )
    with pytest.raises(MailTemplateError, match="no mail template"):
        queue_message(engine, kind="x", to="a@b.test", subject_key="nope", context={}, now=NOW)
    for bad in ("no-at-sign", "a@b.test, c@d.test", "a@b.test\r\nBcc: x@y.z"):
        with pytest.raises(OutboxError, match="e-mail address"):
            queue_message(
                engine,
                kind="dunning",
                to=bad,
                subject_key="dunning_reminder",
                context=_reminder_context(),
                now=NOW,
            )
    with pytest.raises(OutboxError, match="timezone-aware"):
        _queue_naive(engine)
    with pytest.raises(OutboxError, match="unsafe"):
        Attachment("../etc/passwd", b"x")
    with pytest.raises(OutboxError, match="type/subtype"):
        Attachment("a.pdf", b"x", "pdf")
    with engine.connect() as conn:
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(document_deliveries)).scalar() == 0
        )


def _queue_naive(engine) -> None:
    queue_message(
        engine,
        kind="dunning",
        to="a@b.test",
        subject_key="dunning_reminder",
        context=_reminder_context(),
        now=NOW.replace(tzinfo=None),
    )


def test_unknown_language_falls_back_to_english(smtp_server, engine) -> None:
    server, settings = smtp_server
    delivery_id = queue_message(
        engine,
        kind="dunning",
        to="a@b.test",
        subject_key="dunning_reminder",
        context=_reminder_context(),
        now=NOW,
        lang="mr",
    )
    assert _status(engine, delivery_id)["lang"] == "en"
    send_due(engine, NOW, settings)
    assert server.messages[0]["Subject"].strip().startswith("Payment reminder")


def test_a_run_sends_over_one_connection(smtp_server, engine) -> None:
    server, settings = smtp_server
    ids = _queue_many(engine, 6)
    assert sorted(send_due(engine, NOW, settings).sent) == sorted(ids)
    assert len(server.messages) == 6
    assert len(set(server.peers)) == 1  # one connection: one client port for all six
    assert sorted(m["To"] for m in server.messages) == sorted(
        f"accounts{i}@anand.test" for i in range(6)
    )


def test_a_rejected_message_keeps_the_connection_and_a_421_replaces_it(smtp_server, engine) -> None:
    server, settings = smtp_server
    ids = _queue_many(engine, 5)
    # 2nd: permanent rejection (the relay answered: same connection goes on after RSET);
    # 4th: 421, the relay is closing the connection (the next message opens a new one).
    server.fail_next = [None, "550 5.1.1 mailbox unavailable", None, "421 4.3.2 shutting down"]
    report = send_due(engine, NOW, settings)
    assert report.failed == [ids[1]] and report.retrying == [ids[3]]
    assert report.sent == [ids[0], ids[2], ids[4]]
    assert len(server.peers) == 3 and server.peers[0] == server.peers[1] != server.peers[2]
    assert "421" in _status(engine, ids[3])["last_error"]
    assert send_due(engine, NOW + timedelta(minutes=5), settings).sent == [ids[3]]
    assert len(server.messages) == 4  # nothing twice, the rejected one never


def test_a_session_reconnects_when_the_relay_dropped_it(tmp_path) -> None:
    """A relay that restarted (or closed an idle connection) between two messages: NOOP
    notices before the message is sent, and the session opens a new connection."""
    handler, port = Recorder(), free_port()
    settings = SmtpSettings.from_url(f"smtp://127.0.0.1:{port}?timeout=5")
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "billing@paysight.test", "a@b.test", "hello"
    msg.set_content("hello")
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    with SmtpSession(settings) as session:
        try:
            session.send(msg)
        finally:
            controller.stop()
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            session.send(msg)
            assert session.connections == 2
        finally:
            controller.stop()
    assert len(handler.messages) == 2 and handler.peers[0] != handler.peers[1]
