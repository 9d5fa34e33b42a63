"""Append-only landing-zone journal with group-commit fsync, its dedup index and its reader.

Layout: `<landing>/webhooks/<source>/<YYYY-MM-DD>/events-<start_ns>-<pid>.jsonl`, one JSON line
per event. Each receiver process writes its own segment files, so lines never interleave.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

JOURNAL_SUBDIR = "webhooks"
# The C escaper json.dumps uses for str with ensure_ascii=True: returns the quoted JSON string.
_quote = json.encoder.encode_basestring_ascii


class LandingZoneError(OSError):
    """The landing zone could not durably persist an event."""


@dataclass(frozen=True)
class LandedEvent:
    """One event as written to the landing zone (the body is the raw request text)."""

    received_at: str
    source: str
    event_id: str
    event_type: str
    signature_verified: bool
    body: str
    journal_file: str = ""
    offset: int = 0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def encode_line(
    *,
    received_at: str,
    source: str,
    event_id: str,
    event_type: str,
    signature_verified: bool,
    body: str,
) -> bytes:
    """One journal line: a JSON object, pure ASCII, ending in a newline.

    Built with the C string escaper rather than `json.dumps` of a dict (this runs per event on
    the receiver's hot path); the output is the same compact JSON. ensure_ascii-style escaping
    keeps every line pure ASCII, so no newline or odd byte can split a record.
    """
    q = _quote
    return (
        f'{{"received_at":{q(received_at)},"source":{q(source)},"event_id":{q(event_id)},'
        f'"event_type":{q(event_type)},"signature_verified":{"true" if signature_verified else "false"},'
        f'"body":{q(body)}}}\n'
    ).encode("ascii")


def lock_landing_zone(landing_dir: Path) -> int:
    """Take the single-writer lock of a landing zone; return the fd that holds it.

    Start-up repair and the in-memory dedup index are only correct with one receiver process
    per landing zone, so a second one is refused instead of silently breaking exactly-once.
    The kernel drops the lock when the holder dies, even by SIGKILL.
    """
    root = journal_root(landing_dir)
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / ".receiver.lock", os.O_RDWR | os.O_CREAT, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        os.close(fd)
        raise LandingZoneError(
            f"landing zone {root} is held by another receiver process; run one per landing zone"
        ) from exc
    return fd


def journal_root(landing_dir: Path) -> Path:
    return Path(landing_dir) / JOURNAL_SUBDIR


def _journal_files(landing_dir: Path) -> list[Path]:
    root = journal_root(landing_dir)
    if not root.is_dir():
        return []
    return sorted(root.glob("*/*/*.jsonl"))


def _complete_lines(path: Path, start: int) -> Iterator[tuple[int, bytes]]:
    """Yield (offset, line) for complete lines from `start`; a torn last line is not yielded."""
    with path.open("rb") as fh:
        fh.seek(start)
        offset = start
        for line in fh:
            if not line.endswith(b"\n"):
                return
            yield offset, line
            offset += len(line)


def repair_torn_tails(landing_dir: Path) -> int:
    """Cut an unterminated last line left by a crash mid-write; return how many were cut.

    A torn line was never fsynced-and-acknowledged, so the sender will retry it. Must only run
    when no other receiver writes to this landing zone (it runs at receiver start-up).
    """
    repaired = 0
    for path in _journal_files(landing_dir):
        size = path.stat().st_size
        if size == 0:
            continue
        with path.open("rb+") as fh:
            fh.seek(size - 1)
            if fh.read(1) == b"\n":
                continue
            good = 0
            for offset, line in _complete_lines(path, 0):
                good = offset + len(line)
            fh.truncate(good)
            os.fsync(fh.fileno())
            repaired += 1
    return repaired


def load_dedup_index(landing_dir: Path) -> set[tuple[str, str]]:
    """Rebuild the set of (source, event_id) already landed by scanning the journal."""
    seen: set[tuple[str, str]] = set()
    for path in _journal_files(landing_dir):
        for _, line in _complete_lines(path, 0):
            try:
                record = json.loads(line)
                seen.add((record["source"], record["event_id"]))
            except (ValueError, KeyError, TypeError):
                continue  # a corrupt line holds no event we acknowledged
    return seen


def iter_landed_events(
    landing_dir: Path,
    since_cursor: Mapping[str, int] | None = None,
    max_events: int | None = None,
) -> tuple[list[LandedEvent], dict[str, int]]:
    """Read events landed after `since_cursor`; return them and the new cursor.

    The cursor maps each journal file (relative to the landing dir) to the byte offset read so
    far; it is a plain JSON-able dict for a Dagster sensor. Torn last lines are left for later and
    corrupt lines are skipped, so a crash never blocks the reader.
    """
    landing_dir = Path(landing_dir)
    cursor = dict(since_cursor or {})
    events: list[LandedEvent] = []
    for path in _journal_files(landing_dir):
        rel = path.relative_to(landing_dir).as_posix()
        start = cursor.get(rel, 0)
        if path.stat().st_size <= start:
            continue
        for offset, line in _complete_lines(path, start):
            if max_events is not None and len(events) >= max_events:
                return events, cursor
            cursor[rel] = offset + len(line)
            try:
                record = json.loads(line)
                events.append(
                    LandedEvent(
                        received_at=str(record["received_at"]),
                        source=str(record["source"]),
                        event_id=str(record["event_id"]),
                        event_type=str(record["event_type"]),
                        signature_verified=bool(record["signature_verified"]),
                        body=str(record["body"]),
                        journal_file=rel,
                        offset=offset,
                    )
                )
            except (ValueError, KeyError, TypeError):
                continue
    return events, cursor


class Journal:
    """Group-commit writer: concurrent appends share one write+fsync per file per batch.

    `append` resolves only after the fsync covering its line returned, so the caller may then
    acknowledge. While one batch is being fsynced in the writer thread, new lines queue up and
    form the next batch; that is what turns one fsync per request into one per batch.
    """

    def __init__(self, landing_dir: Path, group_commit: bool = True) -> None:
        self.landing_dir = Path(landing_dir)
        self.group_commit = group_commit
        self._segment = f"events-{os.getpid()}-{os.urandom(4).hex()}.jsonl"
        self._fds: dict[tuple[str, str], int] = {}
        self._queue: list[tuple[tuple[str, str], bytes, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
        self.batches = 0

    def submit(self, source: str, day: str, line: bytes) -> asyncio.Future[None]:
        """Queue a line; the returned future resolves once it is fsynced (or fails)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._queue.append(((source, day), line, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush_loop())
        return fut

    async def append(self, source: str, day: str, line: bytes) -> None:
        await self.submit(source, day, line)

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            if self.group_commit:
                batch, self._queue = self._queue, []
            else:
                batch, self._queue = self._queue[:1], self._queue[1:]
            try:
                await loop.run_in_executor(self._executor, self._write_batch, batch)
            except OSError as exc:
                err = LandingZoneError(f"landing zone cannot persist: {exc.strerror or exc}")
                for _, _, fut in batch:
                    if not fut.done():
                        fut.set_exception(err)
            else:
                self.batches += 1
                for _, _, fut in batch:
                    if not fut.done():
                        fut.set_result(None)

    def _fd(self, key: tuple[str, str]) -> int:
        fd = self._fds.get(key)
        if fd is None:
            directory = journal_root(self.landing_dir) / key[0] / key[1]
            directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(directory / self._segment, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
            # fsync the directory so the new file's name survives a power loss too.
            dfd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
            self._fds[key] = fd
        return fd

    def _write_batch(
        self, batch: list[tuple[tuple[str, str], bytes, asyncio.Future[None]]]
    ) -> None:
        grouped: dict[tuple[str, str], list[bytes]] = {}
        for key, line, _ in batch:
            grouped.setdefault(key, []).append(line)
        for key, lines in grouped.items():
            fd = self._fd(key)
            data = b"".join(lines)
            start = os.lseek(fd, 0, os.SEEK_END)
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            except OSError:
                # Leave no unacknowledged line behind, then start a fresh segment next time.
                try:
                    os.ftruncate(fd, start)
                finally:
                    os.close(fd)
                    self._fds.pop(key, None)
                raise

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
