"""A real SMTP relay for tests: aiosmtpd on 127.0.0.1, recording what it accepts."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from aiosmtpd.controller import Controller

from billing_jobs.invoicing.mail import SmtpSettings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Recorder:
    """aiosmtpd handler that records messages and can fail the next DATA commands."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.fail_next: list[str | None] = []  # None: accept that one
        self.peers: list[tuple[str, int]] = []  # the client address of each accepted message
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:
        with self.lock:
            if self.fail_next:
                reply = self.fail_next.pop(0)
                if reply is not None:
                    return reply
            msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
            self.messages.append(msg)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            self.peers.append(tuple(session.peer))
        return "250 OK"


@contextmanager
def running_relay() -> Iterator[tuple[Recorder, SmtpSettings]]:
    """A started relay on a free port and the settings that send to it."""
    handler = Recorder()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, SmtpSettings.from_url(f"smtp://127.0.0.1:{port}?from=billing@paysight.test")
    finally:
        controller.stop()
