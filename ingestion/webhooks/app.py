"""Starlette webhook receiver: verify, deduplicate, durably land, then acknowledge."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from ingestion.webhooks.config import WebhookConfig
from ingestion.webhooks.journal import (
    Journal,
    LandingZoneError,
    encode_line,
    load_dedup_index,
    lock_landing_zone,
    repair_torn_tails,
)
from ingestion.webhooks.ratelimit import TokenBucket
from ingestion.webhooks.signatures import SignatureError, verify_razorpay, verify_stripe

log = logging.getLogger("paysight.webhooks")

# Gateway ids are short tokens; anything else (slashes, dots-dots, control bytes) is refused.
EVENT_ID_RE = re.compile(r"^[A-Za-z0-9_\-:]{1,128}$")
EVENT_TYPE_RE = re.compile(r"^[A-Za-z0-9_.\-:]{1,128}$")


class RequestRejected(Exception):
    """A request that must be answered with `status` and a short reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class _State:
    journal: Journal | None
    seen: set[tuple[str, str]]
    pending: dict[tuple[str, str], asyncio.Future[None]]
    buckets: dict[str, TokenBucket]
    startup_error: str | None = None


def _json(status: int, payload: dict[str, str]) -> Response:
    return Response(
        json.dumps(payload, separators=(",", ":")),
        status_code=status,
        media_type="application/json",
    )


async def _read_body(request: Request, limit: int) -> bytes:
    """Read at most `limit` bytes: trust neither Content-Length nor its absence."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise RequestRejected(400, "invalid Content-Length")
        if int(declared) > limit:
            raise RequestRejected(413, f"body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestRejected(413, f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_payload(body: bytes) -> dict[str, object]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestRejected(400, "body is not valid UTF-8") from exc
    try:
        payload = json.loads(text)
    except ValueError as exc:
        raise RequestRejected(400, "body is not valid JSON") from exc
    if not isinstance(payload, dict):
        raise RequestRejected(400, "body must be a JSON object")
    return payload


def _identify(source: str, request: Request, payload: dict[str, object]) -> tuple[str, str]:
    if source == "razorpay":
        event_id = request.headers.get("x-razorpay-event-id") or payload.get("id")
        event_type = payload.get("event")
    else:
        event_id = payload.get("id")
        event_type = payload.get("type")
    if not isinstance(event_id, str) or not event_id:
        raise RequestRejected(400, "missing event id")
    if not EVENT_ID_RE.match(event_id):
        raise RequestRejected(400, "event id has characters outside [A-Za-z0-9_-:] or is too long")
    if not isinstance(event_type, str) or not EVENT_TYPE_RE.match(event_type):
        raise RequestRejected(400, "missing or invalid event type")
    return event_id, event_type


def create_app(config: WebhookConfig) -> Starlette:
    """Build the receiver. The dedup index is rebuilt from the journal at start-up."""
    state = _State(journal=None, seen=set(), pending={}, buckets={})
    for source, limit in config.rate_limits.items():
        state.buckets[source] = TokenBucket(limit, config.clock)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        lock_fd: int | None = None
        try:
            lock_fd = lock_landing_zone(config.landing_dir)
            repair_torn_tails(config.landing_dir)
            state.seen = load_dedup_index(config.landing_dir)
        except OSError as exc:
            # Keep serving so health checks report it; every write will answer 503.
            state.startup_error = f"landing zone unusable: {exc}"
            log.error(json.dumps({"msg": "landing_zone_unusable", "error": str(exc)}))
        state.journal = Journal(config.landing_dir, group_commit=config.group_commit)
        try:
            yield
        finally:
            state.journal.close()
            if lock_fd is not None:
                os.close(lock_fd)

    async def healthz(request: Request) -> Response:
        if state.startup_error:
            return _json(503, {"status": "degraded", "error": state.startup_error})
        return _json(200, {"status": "ok"})

    async def receive(request: Request) -> Response:
        source = request.path_params["source"]
        started = time.perf_counter()
        event_id = event_type = ""
        reason: str | None = None
        try:
            if source not in config.secrets:
                raise RequestRejected(404, "unknown or disabled webhook source")
            bucket = state.buckets.get(source)
            if bucket is not None and not bucket.allow():
                raise RequestRejected(429, "rate limited")
            body = await _read_body(request, config.max_body_bytes)
            secrets = config.secrets[source]
            if source == "razorpay":
                header = request.headers.get("x-razorpay-signature")
                if header is not None and len(header) > config.max_signature_header_bytes:
                    raise RequestRejected(400, "signature header too large")
                verify_razorpay(header, body, secrets)
            else:
                header = request.headers.get("stripe-signature")
                if header is not None and len(header) > config.max_signature_header_bytes:
                    raise RequestRejected(400, "signature header too large")
                verify_stripe(
                    header,
                    body,
                    secrets,
                    now=config.clock(),
                    tolerance_s=config.tolerance_s,
                    max_signatures=config.max_signatures,
                )
            payload = _parse_payload(body)
            event_id, event_type = _identify(source, request, payload)
            status = await _land(source, event_id, event_type, body)
            response = _json(200, {"status": status})
            code = 200
        except SignatureError as exc:
            code, status, reason = 400, "rejected", str(exc)
        except RequestRejected as exc:
            code, status, reason = exc.status, "rejected", exc.reason
        except LandingZoneError as exc:
            code, status, reason = 503, "unavailable", "landing zone cannot persist; retry later"
            log.error(json.dumps({"msg": "landing_zone_error", "error": str(exc)}))
        except ClientDisconnect:
            code, status, reason = 400, "disconnected", "client disconnected"
        if reason is not None:
            response = _json(code, {"error": reason})
        # Never the body, headers or payload fields: only identifiers and outcome.
        log.info(
            json.dumps(
                {
                    "msg": "webhook",
                    "source": source,
                    "event_id": event_id,
                    "event_type": event_type,
                    "http_status": code,
                    "status": status,
                    "reason": reason,
                    "latency_ms": round((time.perf_counter() - started) * 1000, 3),
                },
                ensure_ascii=True,
            )
        )
        return response

    async def _land(source: str, event_id: str, event_type: str, body: bytes) -> str:
        key = (source, event_id)
        if key in state.seen:
            return "duplicate"
        inflight = state.pending.get(key)
        if inflight is not None:
            # Same event racing in: it is a duplicate only once the first copy is durable.
            await asyncio.shield(inflight)  # raises LandingZoneError if that write failed
            return "duplicate"
        if state.startup_error or state.journal is None:
            raise LandingZoneError(state.startup_error or "journal not started")
        received = datetime.fromtimestamp(config.clock(), tz=UTC)
        line = encode_line(
            received_at=received.isoformat(),
            source=source,
            event_id=event_id,
            event_type=event_type,
            signature_verified=True,
            body=body.decode("utf-8"),
        )
        fut = asyncio.ensure_future(
            state.journal.append(source, received.strftime("%Y-%m-%d"), line)
        )
        state.pending[key] = fut

        def settle(done: asyncio.Future[None]) -> None:
            # Runs even if this request is cancelled mid-wait, so a line that did get written is
            # always in the dedup index and a retry answers "duplicate" instead of writing twice.
            state.pending.pop(key, None)
            if not done.cancelled() and done.exception() is None:
                state.seen.add(key)

        fut.add_done_callback(settle)
        await asyncio.shield(fut)
        return "accepted"

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/webhooks/{source}", receive, methods=["POST"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def serve(host: str, port: int, config: WebhookConfig, log_level: str = "info") -> None:
    """Run the receiver under uvicorn (single process: the dedup index lives in it)."""
    import uvicorn

    logging.basicConfig(level=log_level.upper(), format="%(message)s")
    uvicorn.run(
        create_app(config),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        backlog=4096,
        timeout_keep_alive=30,
    )
