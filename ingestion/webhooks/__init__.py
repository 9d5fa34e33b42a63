"""Webhook receiver: signature checks, durable landing-zone journal and its reader (run it with
`ingestion.webhooks.server.serve`)."""

from ingestion.webhooks.app import create_app
from ingestion.webhooks.config import RateLimit, WebhookConfig, config_from_env
from ingestion.webhooks.journal import LandedEvent, iter_landed_events

__all__ = [
    "LandedEvent",
    "RateLimit",
    "WebhookConfig",
    "config_from_env",
    "create_app",
    "iter_landed_events",
]
