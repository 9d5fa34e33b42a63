"""The one place that decides "accepted" or "duplicate" and lands events, in or out of process.

`Lander` owns the dedup index, the in-flight map and the journal of a landing zone. With one
receiver process the app calls it directly. With several HTTP worker processes, the supervisor
process runs it behind a unix socket (`LanderServer`) and every worker forwards verified events
to it (`LanderClient`), so exactly-once holds across workers: there is still one index and one
writer. A worker answers 2xx only after the lander replied, i.e. after the fsync.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import socket
import struct
from collections.abc import Callable
from pathlib import Path

from ingestion.webhooks.journal import Journal, LandingZoneError

ACCEPTED = "accepted"
DUPLICATE = "duplicate"
# A request frame holds a journal line of up to ~6 MiB (a 1 MiB body, JSON-escaped).
MAX_FRAME = 16 * 1024 * 1024


class Lander:
    """Dedup index + in-flight map + group-commit journal of one landing zone."""

    def __init__(self, journal: Journal, seen: set[tuple[str, str]]) -> None:
        self.journal = journal
        self.seen = seen
        self.pending: dict[tuple[str, str], asyncio.Future[None]] = {}

    def land(self, source: str, event_id: str, day: str, line: bytes) -> asyncio.Future[str]:
        """Future of "accepted" (line fsynced now) or "duplicate" (landed before); it fails
        with LandingZoneError if the line could not be persisted."""
        loop = asyncio.get_running_loop()
        result: asyncio.Future[str] = loop.create_future()
        key = (source, event_id)
        if key in self.seen:
            result.set_result(DUPLICATE)
            return result
        inflight = self.pending.get(key)
        if inflight is not None:
            # Same event racing in: it is a duplicate only once the first copy is durable.
            _chain(inflight, result, DUPLICATE)
            return result
        written = self.journal.submit(source, day, line)
        self.pending[key] = written

        def settle(done: asyncio.Future[None]) -> None:
            # Runs whatever happens to the waiting request, so a line that did get written is
            # always in the index and a retry answers "duplicate" instead of writing twice.
            self.pending.pop(key, None)
            if not done.cancelled() and done.exception() is None:
                self.seen.add(key)

        written.add_done_callback(settle)
        _chain(written, result, ACCEPTED)
        return result


def _chain(source: asyncio.Future[None], target: asyncio.Future[str], status: str) -> None:
    def copy(done: asyncio.Future[None]) -> None:
        if target.done():
            return
        if done.cancelled():
            target.set_exception(LandingZoneError("landing was cancelled"))
        elif done.exception() is not None:
            target.set_exception(done.exception())  # type: ignore[arg-type]
        else:
            target.set_result(status)

    source.add_done_callback(copy)


def lander_address(landing_dir: Path) -> str:
    """Abstract unix socket name of a landing zone's lander (no file, no path-length limit;
    it disappears with the process, even after SIGKILL)."""
    digest = hashlib.sha256(str(Path(landing_dir).resolve()).encode()).hexdigest()[:24]
    return f"\0paysight-webhook-lander-{digest}"


# Wire format, one line each way (journal lines are pure ASCII without raw newlines or tabs in
# the fields that precede them): request "id\tsource\tevent_id\tday\t<journal line>\n",
# reply "id\taccepted|duplicate|error\n".


class LanderServer:
    """Serves a `Lander` to worker processes over a unix socket."""

    def __init__(self, lander: Lander, address: str) -> None:
        self.lander = lander
        self.address = address
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        # Bound by hand: uvloop refuses abstract-namespace paths given as `path=`.
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(self.address)
            sock.listen(128)
        except OSError as exc:
            sock.close()
            raise LandingZoneError(f"cannot listen for workers: {exc}") from exc
        self._server = await asyncio.start_unix_server(self._connection, sock=sock, limit=MAX_FRAME)

    async def close(self) -> None:
        """Stop listening and drop the workers' connections (they then answer 503)."""
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        replies: list[bytes] = []
        loop = asyncio.get_running_loop()
        self._writers.add(writer)

        def flush() -> None:
            # One write per loop iteration for all replies that became ready in it.
            if replies and not writer.is_closing():
                writer.write(b"".join(replies))
            replies.clear()

        def reply(req_id: bytes, status: str) -> None:
            if not replies:
                loop.call_soon(flush)
            replies.append(req_id + b"\t" + status.encode() + b"\n")

        try:
            if not _same_user(writer):
                return
            while True:
                frame = await reader.readline()
                if not frame.endswith(b"\n"):
                    return  # worker gone (EOF or a torn frame)
                req_id, source, event_id, day, line = frame.split(b"\t", 4)
                if not _FRAME_RE.match(b"\t".join((req_id, source, event_id, day))):
                    reply(req_id[:32], "error")  # ids and day become journal paths: no junk
                    continue
                result = self.lander.land(source.decode(), event_id.decode(), day.decode(), line)
                result.add_done_callback(_replier(reply, req_id))
        except (ConnectionError, ValueError, asyncio.LimitOverrunError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()


# request id, source, event id (the receiver's own pattern), day of the journal directory.
_FRAME_RE = re.compile(
    rb"^[0-9]{1,20}\t[a-z]{1,32}\t[A-Za-z0-9_\-:]{1,128}\t[0-9]{4}-[0-9]{2}-[0-9]{2}$"
)


def _same_user(writer: asyncio.StreamWriter) -> bool:
    """Abstract unix sockets have no file permissions: only processes of our own user (the
    workers) may hand events to the lander; anyone else could skip signature checks."""
    sock = writer.get_extra_info("socket")
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return False
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid == os.getuid()


def _replier(
    reply: Callable[[bytes, str], None], req_id: bytes
) -> Callable[[asyncio.Future[str]], None]:
    def done(result: asyncio.Future[str]) -> None:
        ok = not result.cancelled() and result.exception() is None
        reply(req_id, result.result() if ok else "error")

    return done


class _Channel:
    """One connection to the lander and the requests waiting for a reply on it."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.waiting: dict[bytes, asyncio.Future[str]] = {}
        self.queued: list[bytes] = []

    def flush(self) -> None:
        data, self.queued = b"".join(self.queued), []
        if self.writer.is_closing():
            self.fail_all()
        else:
            self.writer.write(data)

    def fail_all(self) -> None:
        # Without a reply nobody knows whether the line was written: answer 503 and let the
        # sender retry; a line that did land then comes back as "duplicate".
        waiting, self.waiting = self.waiting, {}
        for result in waiting.values():
            if not result.done():
                result.set_exception(LandingZoneError("lost the connection to the lander"))


class LanderClient:
    """A worker's connection to the lander; requests are multiplexed by id and the ones made in
    one loop iteration leave in one write."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._channel: _Channel | None = None
        self._connecting: asyncio.Lock | None = None
        self._next = 0

    async def connect(self) -> _Channel:
        """The open channel, connecting first if needed; LandingZoneError if unreachable."""
        channel = self._channel
        if channel is not None and not channel.writer.is_closing():
            return channel
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            channel = self._channel
            if channel is None or channel.writer.is_closing():
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.connect(self.address)  # local: completes or fails at once
                    sock.setblocking(False)
                    reader, writer = await asyncio.open_unix_connection(sock=sock, limit=MAX_FRAME)
                except OSError as exc:
                    sock.close()
                    raise LandingZoneError(f"lander not reachable: {exc}") from exc
                channel = self._channel = _Channel(writer)
                asyncio.get_running_loop().create_task(self._read_replies(reader, channel))
            return channel

    async def land(self, source: str, event_id: str, day: str, line: bytes) -> str:
        channel = await self.connect()
        self._next += 1
        req_id = str(self._next).encode()
        result: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        channel.waiting[req_id] = result
        if not channel.queued:
            asyncio.get_running_loop().call_soon(channel.flush)
        channel.queued.append(
            b"\t".join((req_id, source.encode(), event_id.encode(), day.encode(), line))
        )
        return await result

    async def _read_replies(self, reader: asyncio.StreamReader, channel: _Channel) -> None:
        try:
            while True:
                frame = await reader.readline()
                if not frame.endswith(b"\n"):
                    break
                req_id, _, status = frame[:-1].partition(b"\t")
                result = channel.waiting.pop(req_id, None)
                if result is None or result.done():
                    continue  # its request went away; the lander still landed the line
                if status in (b"accepted", b"duplicate"):
                    result.set_result(status.decode())
                else:
                    result.set_exception(LandingZoneError("the lander could not persist"))
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            channel.writer.close()
            if self._channel is channel:
                self._channel = None
            channel.fail_all()

    async def close(self) -> None:
        if self._channel is not None:
            self._channel.writer.close()
            self._channel = None
