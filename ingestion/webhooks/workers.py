"""Several HTTP worker processes on one port (SO_REUSEPORT) in front of one lander.

The supervisor process owns the landing zone (lock, torn-tail repair, dedup index, journal)
and serves it as a `LanderServer`; each worker runs the receiver app under uvicorn on its own
SO_REUSEPORT socket and forwards verified events to the lander, so there is still exactly one
dedup index and one writer. Workers die with the supervisor (PR_SET_PDEATHSIG): a SIGKILLed
supervisor leaves no worker holding the port or answering without a lander.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import logging
import multiprocessing
import os
import signal
import socket
import sys

from ingestion.webhooks.app import buffered_logging, create_app, uvicorn_config, with_log_flusher
from ingestion.webhooks.config import RateLimit, WebhookConfig, WebhookConfigError
from ingestion.webhooks.journal import (
    Journal,
    load_dedup_index,
    lock_landing_zone,
    repair_torn_tails,
)
from ingestion.webhooks.lander import Lander, LanderServer, lander_address

log = logging.getLogger("paysight.webhooks")
PR_SET_PDEATHSIG = 1


def per_worker(config: WebhookConfig, workers: int) -> WebhookConfig:
    """Each worker enforces its share of the per-source rate limits."""

    def share(limit: RateLimit) -> RateLimit:
        return RateLimit(limit.rate_per_s / workers, max(1, limit.burst // workers))

    limits = {source: share(limit) for source, limit in config.rate_limits.items()}
    invalid = share(config.invalid_rate_limit) if config.invalid_rate_limit else None
    return dataclasses.replace(config, rate_limits=limits, invalid_rate_limit=invalid)


def _die_with_parent(parent_pid: int) -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before the line above took effect
        os._exit(1)


def _reuseport_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _worker_main(
    host: str, port: int, config: WebhookConfig, workers: int, log_level: str, parent: int
) -> None:
    import uvicorn

    _die_with_parent(parent)
    buffered = buffered_logging(log_level)
    app = create_app(per_worker(config, workers), lander_address(config.landing_dir))
    server = uvicorn.Server(
        uvicorn_config(with_log_flusher(app, buffered), host, port, config.limits)
    )
    server.run(sockets=[_reuseport_socket(host, port)])


def serve_workers(
    host: str, port: int, config: WebhookConfig, workers: int, log_level: str = "info"
) -> None:
    """Run the lander here and `workers` HTTP worker processes on `host:port` until SIGTERM or
    SIGINT; a worker that dies is started again."""
    if workers < 2:
        raise WebhookConfigError(f"serve_workers needs at least 2 workers, got {workers}")
    if port == 0:
        raise WebhookConfigError("several workers need a fixed port (SO_REUSEPORT), not 0")
    logging.basicConfig(level=log_level.upper(), format="%(message)s")
    import uvloop

    uvloop.run(_supervise(host, port, config, workers, log_level))


async def _supervise(
    host: str, port: int, config: WebhookConfig, workers: int, log_level: str
) -> None:
    landing = config.landing_dir
    lock_fd = lock_landing_zone(landing)  # a second supervisor stops here
    journal: Journal | None = None
    try:
        repair_torn_tails(landing)
        journal = Journal(landing, group_commit=config.group_commit)
        server = LanderServer(Lander(journal, load_dedup_index(landing)), lander_address(landing))
        await server.start()
        spawn = multiprocessing.get_context("spawn")

        def start(i: int) -> multiprocessing.process.BaseProcess:
            proc = spawn.Process(
                target=_worker_main,
                args=(host, port, config, workers, log_level, os.getpid()),
                name=f"webhook-worker-{i}",
                daemon=True,
            )
            proc.start()
            return proc

        procs = [start(i) for i in range(workers)]
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        while not stop.is_set():
            for i, proc in enumerate(procs):
                if not proc.is_alive():
                    log.error(f'{{"msg":"worker_died","worker":{i},"exitcode":{proc.exitcode}}}')
                    procs[i] = start(i)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
        for proc in procs:
            proc.terminate()
        for proc in procs:
            # Joined off the loop: stopping workers finish their requests, which need the lander.
            await loop.run_in_executor(None, proc.join, 10)
            if proc.is_alive():
                proc.kill()
        await server.close()
    finally:
        if journal is not None:
            journal.close()
        os.close(lock_fd)
