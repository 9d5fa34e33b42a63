"""uvicorn's httptools protocol with one socket write per response instead of two, and with the
receiver's client limits (`config.ReceiverLimits`).

uvicorn writes the status line and headers, then the body, as two `transport.write` calls; on
loopback each is a send() syscall that also runs the receiving side of the TCP stack, and for
small webhook answers that was the largest single cost of a request. Writes made in the same
event-loop iteration are joined and sent once, at the end of that iteration.

uvicorn itself has no header or body timeout and no connection cap that spares busy senders
(`limit_concurrency` answers 503 to everyone once idle sockets fill it), so `GuardedProtocol`
adds them: a connection that has not sent its headers, or its body, in time is closed, and past
the cap the oldest connection still waiting for a request is dropped to make room.
"""

from __future__ import annotations

import asyncio
import resource
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ingestion.webhooks.config import ReceiverLimits

FD_RESERVE = 64  # descriptors kept free for the journal, the lander socket, logs and accept()


class CoalescingTransport:
    """Forwards everything to the real transport, but joins writes of one loop iteration."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._buffer: list[bytes] = []
        self._scheduled = False

    def write(self, data: bytes) -> None:
        self._buffer.append(bytes(data))
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def flush(self) -> None:
        self._scheduled = False
        if self._buffer:
            data = b"".join(self._buffer)
            self._buffer.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        # Queued bytes go first: asyncio's close() itself still sends what it holds.
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` whose responses leave in one write (see `CoalescingTransport`)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]


WAITING = frozenset({"headers", "body", "idle"})  # states whose connection may be dropped


class GuardedProtocol(CoalescingHttpToolsProtocol):
    """The receiver's protocol: `CoalescingHttpToolsProtocol` plus the client limits. Built per
    server by `guarded_protocol`, which sets `limits` and a registry of open connections
    (oldest first) shared by that server's connections."""

    limits: ClassVar[ReceiverLimits] = ReceiverLimits()
    max_connections: ClassVar[int] = ReceiverLimits().max_connections
    registry: ClassVar[dict[GuardedProtocol, None]] = {}

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._phase = "headers"
        self._timer: asyncio.TimerHandle | None = None
        self._arm(self.limits.header_timeout_s)
        registry = type(self).registry
        registry[self] = None
        if len(registry) > self.max_connections:
            self._drop_oldest_waiting()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        type(self).registry.pop(self, None)
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._phase == "idle":  # the next request on a kept-alive connection
            self._phase = "headers"
            self._arm(self.limits.header_timeout_s)

    def on_headers_complete(self) -> None:
        self._phase = "body"
        self._arm(self.limits.body_timeout_s)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._phase = "app"  # the request is whole: never dropped while it is answered
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        self._phase = "idle"  # uvicorn's keep-alive timer (keep_alive_s) runs from here
        super().on_response_complete()

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _too_slow(self) -> None:
        self._timer = None
        if self._phase in ("headers", "body") and not self.transport.is_closing():
            self.transport.close()

    def _drop_oldest_waiting(self) -> None:
        for conn in type(self).registry:
            if conn is not self and conn._phase in WAITING and not conn.transport.is_closing():
                conn.transport.abort()  # frees the descriptor now, unlike a graceful close
                return


def fd_capacity(reserve: int = FD_RESERVE) -> int:
    """How many connections this process's file-descriptor limit leaves room for."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1_000_000
    return max(16, soft - reserve)


def guarded_protocol(limits: ReceiverLimits) -> type[GuardedProtocol]:
    """A `GuardedProtocol` class for one server: its own registry, and a connection cap of
    `limits.max_connections` or what the descriptor limit allows, whichever is lower."""
    return type(
        "ReceiverProtocol",
        (GuardedProtocol,),
        {
            "limits": limits,
            "max_connections": min(limits.max_connections, fd_capacity()),
            "registry": {},
        },
    )
