"""SMTP transport configured from a URL: smtp://user:pass@host:port?starttls=1&from=a@b."""

from __future__ import annotations

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


def send_message(settings: SmtpSettings, message: EmailMessage) -> None:
    """Deliver one message to the relay, or raise SmtpSendError saying whether to retry."""
    context = ssl.create_default_context()
    try:
        if settings.implicit_tls:
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                settings.host, settings.port, timeout=settings.timeout, context=context
            )
        else:
            client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
        with client:
            if settings.starttls:
                client.starttls(context=context)
            if settings.username:
                client.login(settings.username, settings.password or "")
            refused = client.send_message(message)
            if refused:  # some recipients refused, none of ours should be partial
                raise SmtpSendError(f"recipients refused: {refused}", permanent=True)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        raise SmtpSendError(
            f"recipients refused: {exc.recipients}",
            permanent=all(c >= 500 for c in codes),
            code=codes[0] if codes else None,
        ) from exc
    except smtplib.SMTPResponseException as exc:
        detail = (
            exc.smtp_error.decode("utf-8", "replace")
            if isinstance(exc.smtp_error, bytes)
            else exc.smtp_error
        )
        raise SmtpSendError(
            f"SMTP {exc.smtp_code} {detail}", permanent=exc.smtp_code >= 500, code=exc.smtp_code
        ) from exc
    except (TimeoutError, smtplib.SMTPException, OSError) as exc:
        # Connection refused, resets, TLS failures, timeouts: worth another try later.
        raise SmtpSendError(f"{type(exc).__name__}: {exc}", permanent=False) from exc
