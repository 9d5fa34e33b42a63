"""SMTP transport configured from a URL: smtp://user:pass@host:port?starttls=1&from=a@b."""

from __future__ import annotations

import contextlib
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit


class MailConfigError(ValueError):
    """The SMTP URL is malformed."""


class SmtpSendError(RuntimeError):
    """Sending failed. `permanent` is True for 5xx replies, which retrying will not fix."""

    def __init__(self, message: str, *, permanent: bool, code: int | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.code = code


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    implicit_tls: bool = False  # smtps://
    starttls: bool = False
    sender: str = "billing@localhost"
    timeout: float = 15.0

    @classmethod
    def from_url(cls, url: str, *, starttls: bool | None = None) -> SmtpSettings:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise MailConfigError(
                f"SMTP URL must start with smtp:// or smtps://, got {parts.scheme!r}"
            )
        if not parts.hostname:
            raise MailConfigError("SMTP URL has no host")
        try:
            port = parts.port or (465 if parts.scheme == "smtps" else 25)
        except ValueError as exc:
            raise MailConfigError(f"SMTP URL has a bad port: {exc}") from exc
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        use_starttls = starttls
        if use_starttls is None:
            use_starttls = query.get("starttls", "").lower() in ("1", "true", "yes")
        try:
            timeout = float(query.get("timeout", "15"))
        except ValueError as exc:
            raise MailConfigError(
                f"SMTP URL timeout is not a number: {query['timeout']!r}"
            ) from exc
        return cls(
            host=parts.hostname,
            port=port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            implicit_tls=parts.scheme == "smtps",
            starttls=use_starttls,
            sender=query.get("from", "billing@localhost"),
            timeout=timeout,
        )

    def __repr__(self) -> str:  # never print the password
        return f"SmtpSettings(host={self.host!r}, port={self.port}, user={self.username!r})"


def _connect(settings: SmtpSettings) -> smtplib.SMTP:
    context = ssl.create_default_context()
    client: smtplib.SMTP
    if settings.implicit_tls:
        client = smtplib.SMTP_SSL(
            settings.host, settings.port, timeout=settings.timeout, context=context
        )
    else:
        client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
    try:
        if settings.starttls:
            client.starttls(context=context)
        if settings.username:
            client.login(settings.username, settings.password or "")
    except BaseException:
        client.close()
        raise
    return client


def _deliver(client: smtplib.SMTP, message: EmailMessage) -> None:
    refused = client.send_message(message)
    if refused:  # some recipients refused, none of ours should be partial
        raise SmtpSendError(f"recipients refused: {refused}", permanent=True)


def _classified(exc: Exception) -> SmtpSendError:
    """The SmtpSendError for a failure of smtplib (or the socket under it)."""
    if isinstance(exc, SmtpSendError):
        return exc
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return SmtpSendError(
            f"recipients refused: {exc.recipients}",
            permanent=all(c >= 500 for c in codes),
            code=codes[0] if codes else None,
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        detail = (
            exc.smtp_error.decode("utf-8", "replace")
            if isinstance(exc.smtp_error, bytes)
            else exc.smtp_error
        )
        return SmtpSendError(
            f"SMTP {exc.smtp_code} {detail}", permanent=exc.smtp_code >= 500, code=exc.smtp_code
        )
    # Connection refused, resets, TLS failures, timeouts: worth another try later.
    return SmtpSendError(f"{type(exc).__name__}: {exc}", permanent=False)


_SMTP_FAILURES = (SmtpSendError, TimeoutError, smtplib.SMTPException, OSError)


def send_message(settings: SmtpSettings, message: EmailMessage) -> None:
    """Deliver one message to the relay over its own connection, or raise SmtpSendError
    saying whether to retry."""
    try:
        with _connect(settings) as client:
            _deliver(client, message)
    except _SMTP_FAILURES as exc:
        raise _classified(exc) from exc


class SmtpSession:
    """One connection to the relay reused for many messages, as mail servers expect of a bulk
    sender: connecting, STARTTLS and AUTH cost more than a message, and relays rate-limit new
    connections. A reused connection is checked with NOOP before each message (a relay may
    drop an idle one), and replaced after any failure that can leave it unusable. A failure
    during a message is reported exactly as `send_message` reports it, so what the outbox
    retries does not change.
    """

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self.connections = 0  # opened so far (for logs and tests)
        self._client: smtplib.SMTP | None = None

    def _ready(self) -> smtplib.SMTP:
        if self._client is not None:
            try:
                if self._client.noop()[0] == 250:
                    return self._client
            except _SMTP_FAILURES:
                pass
            self._drop()
        self._client = _connect(self.settings)
        self.connections += 1
        return self._client

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(OSError):
                client.close()

    def send(self, message: EmailMessage) -> None:
        """Deliver one message, or raise SmtpSendError saying whether to retry."""
        try:
            client = self._ready()
            _deliver(client, message)
        except _SMTP_FAILURES as exc:
            err = _classified(exc)
            if err.code is not None and err.code != 421 and self._client is not None:
                # The relay answered (a refused recipient, a rejected message): the
                # connection is fine once the transaction is reset.
                try:
                    self._client.rset()
                except _SMTP_FAILURES:
                    self._drop()
            else:
                self._drop()  # 421 (closing), a timeout or a reset: start afresh
            raise err from exc

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(_SMTP_FAILURES):
                self._client.quit()
            self._drop()

    def __enter__(self) -> SmtpSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
