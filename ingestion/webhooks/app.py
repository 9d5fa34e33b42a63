"""ASGI webhook receiver: verify, deduplicate, durably land, then acknowledge.

`POST /webhooks/{source}` is served by a thin ASGI path (no Starlette request, routing or
response objects on the hot path); `/healthz`, lifespan and everything else go through Starlette.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import logging.handlers
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingestion.webhooks.config import ReceiverLimits, WebhookConfig
from ingestion.webhooks.journal import (
    Journal,
    LandingZoneError,
    encode_line,
    load_dedup_index,
    lock_landing_zone,
    repair_torn_tails,
)
from ingestion.webhooks.lander import Lander, LanderClient
from ingestion.webhooks.ratelimit import TokenBucket
from ingestion.webhooks.signatures import SignatureError, verify_razorpay, verify_stripe

log = logging.getLogger("paysight.webhooks")

# Gateway ids are short tokens; anything else (slashes, dots-dots, control bytes) is refused.
EVENT_ID_RE = re.compile(r"^[A-Za-z0-9_\-:]{1,128}$")
EVENT_TYPE_RE = re.compile(r"^[A-Za-z0-9_.\-:]{1,128}$")
WEBHOOK_PREFIX = "/webhooks/"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class RequestRejected(Exception):
    """A request that must be answered with `status` and a short reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class _Disconnected(Exception):
    """The client went away before its body was read."""


@dataclass
class _State:
    lander: Lander | None = None  # in-process (one receiver process)
    client: LanderClient | None = None  # or a worker forwarding to the supervisor's lander
    buckets: dict[str, TokenBucket] = field(default_factory=dict)  # signed requests
    invalid_buckets: dict[str, TokenBucket] = field(default_factory=dict)  # unsigned, bad
    startup_error: str | None = None


def _json_bytes(payload: dict[str, str]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def _json(status: int, payload: dict[str, str]) -> Response:
    return Response(_json_bytes(payload), status_code=status, media_type="application/json")


# The C escaper behind json.dumps(ensure_ascii=True): builds log lines without a dict round trip.
_quote = json.encoder.encode_basestring_ascii
_ACCEPTED = _json_bytes({"status": "accepted"})
_DUPLICATE = _json_bytes({"status": "duplicate"})


def _depth(value: object, limit: int) -> int:
    """Nesting depth of parsed JSON, counted without recursion; stops past `limit`."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def _parse_payload(body: bytes, max_depth: int) -> dict[str, object]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestRejected(400, "body is not valid UTF-8") from exc
    try:
        payload = json.loads(text)
    except RecursionError:
        raise RequestRejected(400, f"body is nested deeper than {max_depth} levels") from None
    except ValueError as exc:
        raise RequestRejected(400, "body is not valid JSON") from exc
    if not isinstance(payload, dict):
        raise RequestRejected(400, "body must be a JSON object")
    if _depth(payload, max_depth) > max_depth:
        raise RequestRejected(400, f"body is nested deeper than {max_depth} levels")
    return payload


def _identify(
    source: str, headers: dict[bytes, bytes], payload: dict[str, object]
) -> tuple[str, str]:
    if source == "razorpay":
        header_id = headers.get(b"x-razorpay-event-id")
        event_id = header_id.decode("latin-1") if header_id else payload.get("id")
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


class WebhookApp:
    """The receiver as an ASGI app.

    Alone (`lander_address=None`) it owns the landing zone: it takes its lock, repairs torn
    tails, rebuilds the dedup index from the journal and lands events itself. As one of several
    HTTP workers it forwards verified events to the lander at `lander_address` (run by
    `ingestion.webhooks.workers`), which holds the one dedup index and journal writer, so
    exactly-once holds across workers.
    """

    def __init__(self, config: WebhookConfig, lander_address: str | None = None) -> None:
        self.config = config
        self.lander_address = lander_address
        self.state = _State()
        for source, limit in config.rate_limits.items():
            self.state.buckets[source] = TokenBucket(limit, config.clock)
        if config.invalid_rate_limit is not None:
            for source in config.secrets:
                self.state.invalid_buckets[source] = TokenBucket(
                    config.invalid_rate_limit, config.clock
                )
        self._starlette = Starlette(
            routes=[Route("/healthz", self._healthz, methods=["GET"])], lifespan=self._lifespan
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(WEBHOOK_PREFIX):
            await self._webhook(scope, receive, send)
        else:
            await self._starlette(scope, receive, send)

    # -- lifespan and health ---------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        if self.lander_address is not None:
            self.state.client = LanderClient(self.lander_address)
            try:
                yield
            finally:
                await self.state.client.close()
            return
        state, config = self.state, self.config
        lock_fd: int | None = None
        seen: set[tuple[str, str]] = set()
        try:
            lock_fd = lock_landing_zone(config.landing_dir)
            repair_torn_tails(config.landing_dir)
            seen = load_dedup_index(config.landing_dir)
        except OSError as exc:
            # Keep serving so health checks report it; every write will answer 503.
            state.startup_error = f"landing zone unusable: {exc}"
            log.error(json.dumps({"msg": "landing_zone_unusable", "error": str(exc)}))
        journal = Journal(config.landing_dir, group_commit=config.group_commit)
        state.lander = Lander(journal, seen)
        try:
            yield
        finally:
            journal.close()
            if lock_fd is not None:
                os.close(lock_fd)

    async def _healthz(self, request: Request) -> Response:
        if self.state.startup_error:
            return _json(503, {"status": "degraded", "error": self.state.startup_error})
        if self.state.client is not None:
            try:
                await self.state.client.connect()
            except LandingZoneError as exc:
                return _json(503, {"status": "degraded", "error": str(exc)})
        return _json(200, {"status": "ok"})

    # -- the hot path ----------------------------------------------------------------------
    async def _webhook(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        source = scope["path"][len(WEBHOOK_PREFIX) :]
        event_id = event_type = ""
        reason: str | None = None
        body_out = _ACCEPTED
        try:
            if scope["method"] != "POST":
                raise RequestRejected(405, "method not allowed; use POST")
            if source not in self.config.secrets:
                raise RequestRejected(404, "unknown or disabled webhook source")
            headers = dict(scope["headers"])
            body = await self._read_body(headers, receive)
            # Rate limits after the signature: junk spends its own bucket, never the budget
            # of events that are really from the gateway.
            try:
                self._verify(source, headers, body)
            except (SignatureError, RequestRejected):
                invalid = self.state.invalid_buckets.get(source)
                if invalid is not None and not invalid.allow():
                    raise RequestRejected(
                        429, "rate limited (unsigned or invalid requests)"
                    ) from None
                raise
            bucket = self.state.buckets.get(source)
            if bucket is not None and not bucket.allow():
                raise RequestRejected(429, "rate limited")
            payload = _parse_payload(body, self.config.limits.max_json_depth)
            event_id, event_type = _identify(source, headers, payload)
            status = await self._land(source, event_id, event_type, body)
            code = 200
            if status == "duplicate":
                body_out = _DUPLICATE
        except SignatureError as exc:
            code, status, reason = 400, "rejected", str(exc)
        except RequestRejected as exc:
            code, status, reason = exc.status, "rejected", exc.reason
        except LandingZoneError as exc:
            code, status, reason = 503, "unavailable", "landing zone cannot persist; retry later"
            log.error(json.dumps({"msg": "landing_zone_error", "error": str(exc)}))
        except _Disconnected:
            code, status, reason = 400, "disconnected", "client disconnected"
        if reason is not None:
            body_out = _json_bytes({"error": reason})
        response_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body_out)).encode()),
        ]
        if code == 405:
            response_headers.append((b"allow", b"POST"))
        await send({"type": "http.response.start", "status": code, "headers": response_headers})
        await send({"type": "http.response.body", "body": body_out})
        if log.isEnabledFor(logging.INFO):
            # Never the body, headers or payload fields: only identifiers and outcome.
            q = _quote
            log.info(
                f'{{"msg":"webhook","source":{q(source)},"event_id":{q(event_id)},'
                f'"event_type":{q(event_type)},"http_status":{code},"status":{q(status)},'
                f'"reason":{"null" if reason is None else q(reason)},'
                f'"latency_ms":{round((time.perf_counter() - started) * 1000, 3)}}}'
            )

    async def _read_body(self, headers: dict[bytes, bytes], receive: Receive) -> bytes:
        """Read at most the limit: trust neither Content-Length nor its absence."""
        limit = self.config.max_body_bytes
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                raise RequestRejected(400, "invalid Content-Length")
            if int(declared) > limit:
                raise RequestRejected(413, f"body larger than {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise RequestRejected(413, f"body larger than {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _verify(self, source: str, headers: dict[bytes, bytes], body: bytes) -> None:
        config = self.config
        secrets = config.secrets[source]
        name = b"x-razorpay-signature" if source == "razorpay" else b"stripe-signature"
        raw = headers.get(name)
        if raw is not None and len(raw) > config.max_signature_header_bytes:
            raise RequestRejected(400, "signature header too large")
        header = raw.decode("latin-1") if raw is not None else None
        if source == "razorpay":
            verify_razorpay(header, body, secrets)
        else:
            verify_stripe(
                header,
                body,
                secrets,
                now=config.clock(),
                tolerance_s=config.tolerance_s,
                max_signatures=config.max_signatures,
            )

    async def _land(self, source: str, event_id: str, event_type: str, body: bytes) -> str:
        state = self.state
        if state.startup_error:
            raise LandingZoneError(state.startup_error)
        received_at = datetime.fromtimestamp(self.config.clock(), tz=UTC).isoformat()
        line = encode_line(
            received_at=received_at,
            source=source,
            event_id=event_id,
            event_type=event_type,
            signature_verified=True,
            body=body.decode("utf-8"),
        )
        if state.client is not None:
            return await state.client.land(source, event_id, received_at[:10], line)
        if state.lander is None:
            raise LandingZoneError("journal not started")
        # Shielded: a cancelled request must not cancel a write other requests may wait on.
        return await asyncio.shield(state.lander.land(source, event_id, received_at[:10], line))


def create_app(config: WebhookConfig, lander_address: str | None = None) -> WebhookApp:
    """Build the receiver (an ASGI app with lifespan); see `WebhookApp`."""
    return WebhookApp(config, lander_address)


async def _flush_logs_periodically(handler: logging.Handler, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        handler.flush()


def uvicorn_config(app: Any, host: str, port: int, limits: ReceiverLimits | None = None) -> Any:
    """The uvicorn settings of the receiver: uvloop, httptools with one socket write per
    response and the client limits (`ingestion.webhooks.transport`), no access log, no
    proxy-header middleware."""
    import uvicorn

    from ingestion.webhooks.transport import guarded_protocol

    limits = limits or ReceiverLimits()
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http=guarded_protocol(limits),
        lifespan="on",
        # uvicorn's own dictConfig would close the handlers set up by `buffered_logging`.
        log_config=None,
        log_level="warning",
        access_log=False,
        proxy_headers=False,  # nothing here reads client addresses; skip that middleware
        server_header=False,
        backlog=4096,
        timeout_keep_alive=limits.keep_alive_s,  # type: ignore[arg-type]
    )


def buffered_logging(log_level: str) -> logging.handlers.MemoryHandler:
    """Request logs buffered and written every 0.5 s (see `with_log_flusher`), at 1,000
    records, or at once for errors: one write per request would cost more than the request."""
    target = logging.StreamHandler()
    target.setFormatter(logging.Formatter("%(message)s"))
    buffered = logging.handlers.MemoryHandler(
        1000, flushLevel=logging.ERROR, target=target, flushOnClose=True
    )
    logging.basicConfig(level=log_level.upper(), handlers=[buffered])
    # The log lines name nothing of the caller, thread or process: skip collecting them.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None  # no stack walk per record to find the caller
    return buffered


def with_log_flusher(app: WebhookApp, buffered: logging.Handler) -> Any:
    """Wrap `app` so that its lifespan also flushes `buffered` twice a second."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            flusher = asyncio.get_running_loop().create_task(
                _flush_logs_periodically(buffered, 0.5)
            )
            try:
                await app(scope, receive, send)
            finally:
                flusher.cancel()
                buffered.flush()
        else:
            await app(scope, receive, send)

    return wrapped
