"""Outbound mail: SMTP transport, per-language templates and a SQL outbox with retries."""

from billing_jobs.invoicing.mail.documents import document_mail, queue_document
from billing_jobs.invoicing.mail.outbox import (
    Attachment,
    FileAttachment,
    OutboxError,
    QueuedMail,
    RetryPolicy,
    delivery,
    queue_message,
    queue_messages,
)
from billing_jobs.invoicing.mail.sender import SendReport, resend, send_due
from billing_jobs.invoicing.mail.smtp import (
    MailConfigError,
    SmtpSendError,
    SmtpSession,
    SmtpSettings,
    send_message,
)
from billing_jobs.invoicing.mail.templates import MailTemplateError, render_message, template_keys

__all__ = [
    "Attachment",
    "FileAttachment",
    "MailConfigError",
    "MailTemplateError",
    "OutboxError",
    "QueuedMail",
    "RetryPolicy",
    "SendReport",
    "SmtpSendError",
    "SmtpSession",
    "SmtpSettings",
    "delivery",
    "document_mail",
    "queue_document",
    "queue_message",
    "queue_messages",
    "render_message",
    "resend",
    "send_due",
    "send_message",
    "template_keys",
]
