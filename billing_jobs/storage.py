"""Object storage: the one layer every location setting goes through.

A location is a local directory or ``s3://bucket/prefix``. Every store is worked through a
local directory (the landing zone, the documents folder) and, for ``s3://``, mirrored to the
bucket by :func:`mirror`: files the bucket lacks, or holds shorter, are uploaded; objects the
local directory lacks, or holds shorter, are downloaded. Everything under a mirrored location
is append-only or write-once (journal segments grow by whole lines, a bank file or an invoice
PDF is written once under its own name), so the longer copy is always the newer one, a byte
offset into a file stays valid on every copy, and running the mirror twice writes nothing.

Atomicity: a local write is a temporary file, fsync and rename (a reader sees the old file or
the new one); an S3 PUT of a whole object is atomic (a reader sees the old object or the new
one, never part of one), so an upload needs no temporary key. A journal segment still being
written is uploaded up to its last complete line only.

``S3_ENDPOINT_URL`` (or boto3's own ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``) points the
client at a non-AWS endpoint (MinIO, moto); credentials come from boto3's usual chain.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

S3 = "s3"


class StorageError(RuntimeError):
    """A location cannot be used; the message names it and says why."""


def scheme(url: str) -> str:
    """``s3`` for ``s3://...``, ``file`` for a local path or ``file://``; other schemes as given."""
    if "://" not in url:
        return "file"
    return url.split("://", 1)[0].lower()


def is_remote(url: str | None) -> bool:
    return bool(url) and scheme(str(url)) == S3


def split_s3(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix")``; a clear error otherwise."""
    parts = urlsplit(url)
    if parts.scheme.lower() != S3 or not parts.netloc:
        raise StorageError(f"{url!r}: expected s3://bucket[/prefix]")
    if parts.query or parts.fragment:
        raise StorageError(f"{url!r}: an s3 location takes no query or fragment")
    prefix = parts.path.strip("/")
    if any(p in {".", ".."} for p in prefix.split("/")):
        raise StorageError(f"{url!r}: '.' and '..' are not allowed in the prefix")
    return parts.netloc, prefix


def endpoint_url() -> str | None:
    return (
        os.environ.get("S3_ENDPOINT_URL")
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
        or None
    )


def s3_client() -> Any:
    """A boto3 S3 client: a short connect timeout and few retries, so an unreachable store
    fails the start-up check in seconds rather than minutes."""
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=5, read_timeout=60, retries={"max_attempts": 3})
    return boto3.client("s3", endpoint_url=endpoint_url(), config=config)


@dataclass
class S3Store:
    """Objects under ``s3://bucket/prefix``; keys are relative, '/'-separated."""

    bucket: str
    prefix: str = ""
    client: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.client is None:
            self.client = s3_client()

    @classmethod
    def from_url(cls, url: str, client: Any = None) -> S3Store:
        bucket, prefix = split_s3(url)
        return cls(bucket, prefix, client)

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def _key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def check(self) -> None:
        """Fail with a StorageError naming the bucket when it is missing or not ours to use."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in {"404", "NoSuchBucket"}:
                raise StorageError(f"{self.url}: bucket {self.bucket!r} does not exist") from None
            if code in {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}:
                raise StorageError(
                    f"{self.url}: access to bucket {self.bucket!r} denied ({code}): check the "
                    "AWS credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the profile)"
                ) from None
            raise StorageError(f"{self.url}: {code or exc}") from None
        except BotoCoreError as exc:
            raise StorageError(f"{self.url}: cannot reach the object store: {exc}") from None

    def sizes(self) -> dict[str, int]:
        """Relative key -> size of every object under the prefix."""
        out: dict[str, int] = {}
        base = f"{self.prefix}/" if self.prefix else ""
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=base
        ):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(base) :]
                if rel and not rel.endswith("/"):
                    out[rel] = int(obj["Size"])
        return out

    def put(self, rel: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(rel), Body=data)

    def get(self, rel: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self._key(rel))["Body"].read()

    def delete(self, rel: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(rel))


def check_location(url: str, setting: str) -> None:
    """A start-up check: a local path passes, ``s3://`` must name a reachable bucket, any other
    scheme is refused. Raises StorageError whose message starts with the setting's name."""
    kind = scheme(url)
    if kind == "file":
        return
    if kind != S3:
        raise StorageError(
            f"{setting}: {kind}:// locations are not supported; give a local path or s3://"
        )
    try:
        S3Store.from_url(url).check()
    except StorageError as exc:
        raise StorageError(f"{setting}: {exc}") from None


def _complete(path: Path, data: bytes) -> bytes:
    """A journal segment up to its last complete line (a writer may be mid-line)."""
    if path.suffix == ".jsonl" and data and not data.endswith(b"\n"):
        return data[: data.rfind(b"\n") + 1]
    return data


def _local_files(root: Path) -> Iterator[tuple[str, Path]]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            yield path.relative_to(root).as_posix(), path


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` at `path` atomically and durably (temporary file, fsync, rename). The
    temporary name is hidden and unique: two writers racing on one path never share it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass
class MirrorReport:
    uploaded: list[str] = field(default_factory=list)
    downloaded: list[str] = field(default_factory=list)


def mirror(store: S3Store, local: Path, *, fetch: bool = True) -> MirrorReport:
    """Make the local directory and the store agree on every file: the longer copy of each
    file wins (see the module docstring). Hidden files (temporary parts, locks) are never
    shipped. ``fetch=False`` only uploads."""
    from botocore.exceptions import BotoCoreError, ClientError

    local = Path(local)
    local.mkdir(parents=True, exist_ok=True)
    report = MirrorReport()
    try:
        remote = store.sizes()
        for rel, path in _local_files(local):
            known = remote.get(rel, -1)
            if path.stat().st_size <= known:
                continue  # nothing new here: the file is not read
            data = _complete(path, path.read_bytes())
            if len(data) > known:
                store.put(rel, data)
                report.uploaded.append(rel)
        for rel, size in remote.items() if fetch else ():
            parts = rel.split("/")
            if rel.startswith("/") or any(p.startswith(".") or not p for p in parts):
                continue  # never write outside the directory, nor a hidden file
            path = local / rel
            have = path.stat().st_size if path.is_file() else -1
            if size > have:
                write_atomic(path, store.get(rel))
                report.downloaded.append(rel)
    except (ClientError, BotoCoreError) as exc:
        raise StorageError(f"{store.url}: {exc}") from None
    return report


def sync(url: str | None, local: Path) -> MirrorReport | None:
    """Mirror an ``s3://`` location with its local directory; nothing to do (None) for a
    local location."""
    if not is_remote(url):
        return None
    return mirror(S3Store.from_url(str(url)), local)


class Shipper:
    """Uploads what lands in ``local`` every ``interval`` seconds from a daemon thread, and once
    more on `stop` (the webhook receiver's side of an ``s3://`` landing zone: the journal stays
    local and fsync'd, acknowledgements never wait for the store). A failed upload is logged
    and retried on the next tick; nothing local is removed."""

    def __init__(self, store: S3Store, local: Path, interval: float = 5.0) -> None:
        import threading

        self.store, self.local, self.interval = store, Path(local), interval
        self.shipped = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="landing-shipper", daemon=True)

    def start(self) -> Shipper:
        self._thread.start()
        return self

    def ship(self) -> None:
        try:
            self.shipped += len(mirror(self.store, self.local, fetch=False).uploaded)
            self.last_error = None
        except StorageError as exc:
            import logging

            self.last_error = str(exc)
            logging.getLogger(__name__).warning("landing shipper: %s (retrying)", exc)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.ship()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.ship()
