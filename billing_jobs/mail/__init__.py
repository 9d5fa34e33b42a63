"""Outbound mail: SMTP transport, per-language templates and a SQL outbox with retries."""

from billing_jobs.mail.documents import queue_document
from billing_jobs.mail.outbox import (
    Attachment,
    OutboxError,
    RetryPolicy,
    SendReport,
    delivery,
    document_deliveries,
    document_delivery_attachments,
    ensure_delivery_tables,
    metadata,
    queue_message,
    resend,
    send_due,
)
from billing_jobs.mail.smtp import MailConfigError, SmtpSendError, SmtpSettings, send_message
from billing_jobs.mail.templates import MailTemplateError, render_message, template_keys

__all__ = [
    "Attachment",
    "MailConfigError",
    "MailTemplateError",
    "OutboxError",
    "RetryPolicy",
    "SendReport",
    "SmtpSendError",
    "SmtpSettings",
    "delivery",
    "document_deliveries",
    "document_delivery_attachments",
    "ensure_delivery_tables",
    "metadata",
    "queue_document",
    "queue_message",
    "render_message",
    "resend",
    "send_due",
    "send_message",
    "template_keys",
]
