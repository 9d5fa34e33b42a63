"""Running the receiver: one uvicorn process, or a lander plus several HTTP workers
(`ingestion.webhooks.workers`), with the client limits of `WebhookConfig.limits`."""

from __future__ import annotations

from ingestion.webhooks.app import buffered_logging, create_app, uvicorn_config, with_log_flusher
from ingestion.webhooks.config import WebhookConfig


def serve(
    host: str, port: int, config: WebhookConfig, log_level: str = "info", workers: int = 1
) -> None:
    """Run the receiver under uvicorn (`uvicorn_config`): one process, or with `workers` > 1
    a lander process plus that many HTTP workers on the port (`ingestion.webhooks.workers`)."""
    if workers > 1:
        from ingestion.webhooks.workers import serve_workers

        serve_workers(host, port, config, workers, log_level)
        return
    import uvicorn

    buffered = buffered_logging(log_level)
    app = with_log_flusher(create_app(config), buffered)
    uvicorn.Server(uvicorn_config(app, host, port, config.limits)).run()
