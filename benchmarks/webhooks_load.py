"""Load benchmark of the webhook receiver on loopback: throughput, latency, exactly-once landing.

The real receiver (`python -m ingestion.webhooks`: uvicorn + uvloop + httptools, one process)
runs in a subprocess; this process is the load generator: 1,000 kept-alive TCP connections on
raw asyncio streams (uvloop) sending pre-built, pre-signed HTTP requests for Stripe events.

Phases (each on a fresh landing zone, bounded in events and in seconds):
  fsync-each  closed loop, group commit OFF (one fsync per event)    -> baseline 1
  closed      closed loop, group commit on: each connection sends its next event as soon as
              the previous one is answered -> maximum events/s (baseline 2: the old load model;
              with 1,000 connections Little's law makes latency ~ 1000 / throughput)
  open        open loop (wrk2-style) at --rate events/s: event i is due at start + i/rate on
              connection i mod 1000; latency is measured from that INTENDED send time, so a
              stalled receiver cannot hide its queue (no coordinated omission)
              -> goal: >= 2,000 verified events/s with p99 < 100 ms
  --kill      open loop; SIGKILL the receiver when 40% are acknowledged, restart it on the same
              port and landing zone; senders retry anything without a 2xx. Afterwards every
              event that got a 2xx must be in the landing zone exactly once.

After each phase the landing zone is read back: "verified" counts acknowledged events that are
there exactly once; events/s figures are verified events per second.

  --workers N also runs closed and open against N HTTP worker processes (SO_REUSEPORT) that
              forward to one lander process (`ingestion.webhooks.workers`); --kill uses them too.

Usage: python benchmarks/webhooks_load.py [--rate 2500] [--seconds 8] [--workers 2] [--kill]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import math
import os
import re
import resource
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import uvloop

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ingestion.webhooks import iter_landed_events  # noqa: E402
from ingestion.webhooks.signatures import stripe_signature  # noqa: E402

SECRET = "whsec_" + secrets.token_hex(16)  # generated per run: no secret ships in the repo
GOAL_RATE = 2000.0
GOAL_P99_MS = 100.0
RETRY_PAUSE_S = 0.05
PHASES: list[dict[str, float]] = []  # every phase run, for the exactly-once verdict


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cpu_calibration() -> str:
    """HMAC cost in CPU and wall time: on a busy shared box both inflate, and this says how much
    (about 1.5 us of CPU on an idle modern core)."""
    body = b"x" * 300
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(20000):
        stripe_signature(SECRET, 1, body)
    cpu_us = (time.process_time() - cpu) / 20000 * 1e6
    wall_us = (time.perf_counter() - wall) / 20000 * 1e6
    try:
        pressure = Path("/proc/pressure/cpu").read_text().split()[1]  # "avg10=.."
    except (OSError, IndexError):
        pressure = "avg10=unavailable"
    return (
        f"cpu calibration: one HMAC-SHA256 of 300 bytes = {cpu_us:.1f} us CPU, {wall_us:.1f} us "
        f"wall; CPU pressure (share of time tasks waited for a core) {pressure}%"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Receiver:
    """The receiver in a subprocess; restartable on the same port and landing zone."""

    def __init__(
        self, landing: Path, group_commit: bool = True, code: Path = ROOT, workers: int = 1
    ) -> None:
        self.landing = landing
        self.workers = workers
        self.code = code  # the checkout whose receiver runs (another one for an A/B run)
        self.port = free_port()
        self.group_commit = group_commit
        self.proc: subprocess.Popen[bytes] | None = None
        self.cpu_s = 0.0  # CPU of processes already gone (killed and restarted)
        self.log = open(landing.parent / f"{landing.name}-receiver.log", "ab")  # noqa: SIM115

    def start(self) -> None:
        env = {
            **os.environ,
            "STRIPE_WEBHOOK_SECRET": SECRET,
            "PAYSIGHT_WEBHOOK_GROUP_COMMIT": "1" if self.group_commit else "0",
            "PYTHONPATH": str(self.code),
        }
        cmd = [sys.executable, "-m", "ingestion.webhooks", "--landing", str(self.landing)]
        cmd += ["--port", str(self.port), "--log-level", "info"]
        if self.workers > 1:
            cmd += ["--workers", str(self.workers)]
        self.proc = subprocess.Popen(
            cmd, env=env, stdout=self.log, stderr=self.log, cwd=self.landing.parent
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("receiver did not start; see " + self.log.name)

    def cpu_seconds(self) -> float:
        """CPU of the receiver and its worker processes so far (killed ones included)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.cpu_s
        total = self.cpu_s
        try:
            top = psutil.Process(self.proc.pid)
            for proc in [top, *top.children(recursive=True)]:
                t = proc.cpu_times()
                total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
        return total

    def kill(self) -> None:
        assert self.proc is not None
        self.cpu_s = self.cpu_seconds()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@dataclass(frozen=True)
class Event:
    event_id: str
    request: bytes  # the whole HTTP/1.1 request, headers and signed body


def make_events(n: int, prefix: str, port: int) -> list[Event]:
    """Pre-built, pre-signed requests so the generator spends no CPU on them while timing."""
    ts = int(time.time())  # each phase is far shorter than the 300 s tolerance
    events = []
    for i in range(n):
        event_id = f"evt_{prefix}_{i:07d}"
        body = (
            f'{{"id":"{event_id}","object":"event","type":"invoice.paid","created":{ts},'
            f'"data":{{"object":{{"id":"in_{i}","amount_paid":49900,"currency":"inr"}}}}}}'
        ).encode()
        head = (
            f"POST /webhooks/stripe HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Stripe-Signature: t={ts},v1={stripe_signature(SECRET, ts, body)}\r\n\r\n"
        ).encode()
        events.append(Event(event_id, head + body))
    return events


@dataclass
class Outcome:
    latencies_ms: list[float] = field(default_factory=list)  # from the intended send time
    service_ms: list[float] = field(default_factory=list)  # from the actual (last) send
    acked: dict[str, str] = field(default_factory=dict)  # event id -> accepted|duplicate
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    retries: int = 0
    elapsed_s: float = 0.0
    timed_out: bool = False
    generator_cpu_s: float = 0.0


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, server closes) of one HTTP/1.1 response with a Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    length = int(lower[at + 17 : lower.index(b"\r\n", at + 2)]) if at >= 0 else 0
    body = await reader.readexactly(length) if length else b""
    return status, body, b"\r\nconnection: close" in lower


class Connection:
    """One kept-alive connection that reconnects after resets (a killed receiver)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def post_until_acked(self, event: Event, due: float | None, out: Outcome) -> None:
        """Send until a 2xx, like a real sender; latency from `due` (open loop) or the send."""
        while True:
            started = time.perf_counter()
            try:
                if self.writer is None:
                    await self.open()
                assert self.reader is not None and self.writer is not None
                self.writer.write(event.request)
                status, body, closing = await read_response(self.reader)
                if closing:
                    self.close()
                if status == 200:
                    now = time.perf_counter()
                    out.latencies_ms.append((now - (due if due is not None else started)) * 1000)
                    out.service_ms.append((now - started) * 1000)
                    out.acked[event.event_id] = "duplicate" if b"duplicate" in body else "accepted"
                    return
                out.errors[f"http {status}"] += 1
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                out.errors[type(exc).__name__] += 1
                self.close()
            out.retries += 1
            await asyncio.sleep(RETRY_PAUSE_S)


async def drive(
    port: int,
    events: list[Event],
    connections: int,
    rate: float | None,
    max_seconds: float,
    on_progress: Callable[[Outcome], None] | None = None,
) -> Outcome:
    """Send `events` over `connections` connections; `rate=None` is closed loop."""
    out = Outcome()
    conns = [Connection(port) for _ in range(connections)]
    for i in range(0, connections, 100):  # connect first, outside the timed window
        await asyncio.gather(*(c.open() for c in conns[i : i + 100]))
    cpu_before = time.process_time()
    start = time.perf_counter() + 0.05

    async def sender(k: int) -> None:
        conn = conns[k]
        for i in range(k, len(events), connections):
            due = None
            if rate is not None:
                due = start + i / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            await conn.post_until_acked(events[i], due, out)

    async def progress() -> None:
        while on_progress is not None:
            on_progress(out)
            await asyncio.sleep(0.01)

    watcher = asyncio.ensure_future(progress())
    try:
        await asyncio.wait_for(
            asyncio.gather(*(sender(k) for k in range(connections))), timeout=max_seconds
        )
    except TimeoutError:
        out.timed_out = True
    finally:
        out.elapsed_s = time.perf_counter() - start
        out.generator_cpu_s = time.process_time() - cpu_before
        watcher.cancel()
        for conn in conns:
            conn.close()
    return out


def run_async(coro):
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def check_landing(landing: Path, out: Outcome) -> dict[str, int]:
    """Acknowledged events landed exactly once, missing, and ids landed more than once."""
    events, _ = iter_landed_events(landing, {})
    counts = collections.Counter(e.event_id for e in events)
    return {
        "landed": len(events),
        "verified": sum(1 for event_id in out.acked if counts[event_id] == 1),
        "missing": sum(1 for event_id in out.acked if counts[event_id] == 0),
        "multi": sum(1 for c in counts.values() if c > 1),
    }


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def report(name: str, out: Outcome, landing: Path, receiver_cpu_s: float) -> dict[str, float]:
    check = check_landing(landing, out)
    rate = check["verified"] / out.elapsed_s if out.elapsed_s else 0.0
    p50, p99 = pct(out.latencies_ms, 50), pct(out.latencies_ms, 99)
    n = max(1, len(out.acked))
    print(
        f"{name:<10} {check['verified']:>6} verified in {out.elapsed_s:6.2f} s = {rate:6.0f} "
        f"events/s  p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  max {max(out.latencies_ms or [0]):7.1f}"
        f" ms  | acked {len(out.acked)} landed {check['landed']} missing {check['missing']} "
        f"multi-landed {check['multi']} retries {out.retries}"
        + (f" errors {dict(out.errors)}" if out.errors else "")
        + (" TIMED OUT" if out.timed_out else "")
    )
    if out.service_ms != out.latencies_ms:
        # If these are far below the figures above, the generator itself ran late.
        print(
            f"{'':<10} from the actual send: p50 {pct(out.service_ms, 50):7.1f} ms  "
            f"p99 {pct(out.service_ms, 99):7.1f} ms"
        )
    print(
        f"{'':<10} CPU per event: receiver {receiver_cpu_s / n * 1e6:.0f} us, generator "
        f"{out.generator_cpu_s / n * 1e6:.0f} us; load average now {loadavg()}"
    )
    return {"rate": rate, "p50": p50, "p99": p99, **check, "acked": len(out.acked)}


def run_phase(
    name: str,
    workdir: Path,
    n: int,
    args: argparse.Namespace,
    rate: float | None = None,
    group_commit: bool = True,
    code: Path = ROOT,
    workers: int = 1,
) -> dict[str, float]:
    landing = workdir / name
    receiver = Receiver(landing, group_commit=group_commit, code=code, workers=workers)
    receiver.start()
    try:
        events = make_events(n, re.sub(r"[^A-Za-z0-9]", "", name), receiver.port)
        cpu_before = receiver.cpu_seconds()
        out = run_async(drive(receiver.port, events, args.connections, rate, args.max_seconds))
        cpu = receiver.cpu_seconds() - cpu_before
    finally:
        receiver.stop()
    figures = report(name, out, landing, cpu)
    PHASES.append(figures)
    figures["cpu_us"] = cpu / max(1, len(out.acked)) * 1e6
    figures["complete"] = float(len(out.acked) == n and not out.timed_out)
    return figures


def run_kill(workdir: Path, args: argparse.Namespace) -> bool:
    landing = workdir / "kill"
    receiver = Receiver(landing, workers=args.workers)
    receiver.start()
    n = int(args.rate * args.seconds)
    state: dict[str, object] = {"killed_at": None}

    def restart() -> None:
        receiver.kill()
        time.sleep(0.3)  # senders see refused connections and keep retrying meanwhile
        receiver.start()

    def on_progress(out: Outcome) -> None:
        if state["killed_at"] is None and len(out.acked) >= n * 0.4:
            state["killed_at"] = len(out.acked)
            asyncio.get_running_loop().run_in_executor(None, restart)

    try:
        events = make_events(n, "kill", receiver.port)
        out = run_async(
            drive(receiver.port, events, args.connections, args.rate, args.max_seconds, on_progress)
        )
        cpu = receiver.cpu_seconds()
    finally:
        receiver.stop()
    print(f"kill       SIGKILL after {state['killed_at']} acks, restarted on the same landing zone")
    figures = report("kill", out, landing, cpu)
    dup_acks = sum(1 for s in out.acked.values() if s == "duplicate")
    print(
        f"kill       {dup_acks} events answered 'duplicate' after the restart (landed before the "
        "kill, reply lost)"
    )
    ok = (
        state["killed_at"] is not None
        and figures["missing"] == 0
        and figures["multi"] == 0
        and len(out.acked) == n
    )
    print(f"kill       every event that got a 2xx is landed exactly once: {'YES' if ok else 'NO'}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=2500.0, help="open-loop events/s")
    parser.add_argument("--seconds", type=float, default=8.0, help="open-loop duration")
    parser.add_argument("--closed-events", type=int, default=20000)
    parser.add_argument("--baseline-events", type=int, default=2000, help="fsync-each events")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--max-seconds", type=float, default=90.0, help="cap per phase")
    parser.add_argument("--kill", action="store_true", help="only the SIGKILL/restart run")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="N > 1: also run closed and open with N HTTP worker processes plus a lander "
        "(and --kill against that setup)",
    )
    parser.add_argument("--only", choices=["open"], help="run only this phase")
    parser.add_argument("--repeat", type=int, default=1, help="interleaved rounds (medians)")
    parser.add_argument(
        "--baseline-checkout",
        type=Path,
        help="also run the closed and open phases against the receiver of this checkout "
        "(e.g. `git archive main | tar -x -C /tmp/main`) and print the ratios",
    )
    args = parser.parse_args()
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < args.connections + 100:
        print("raise the open-files limit (ulimit -n) above the connection count")
        return 2
    print(
        f"webhook receiver load test: {args.connections} connections; receiver uvicorn+uvloop+"
        f"httptools (1 process, or N workers + lander); generator in this process (uvloop, raw "
        f"streams); {os.cpu_count()} CPUs, loopback; load average at start {loadavg()}"
    )
    print(cpu_calibration())
    with tempfile.TemporaryDirectory(prefix="paysight-bench-") as tmp:
        workdir = Path(tmp)
        if args.kill:
            return 0 if run_kill(workdir, args) else 1
        if args.only == "open":
            rated = run_phase("open", workdir, int(args.rate * args.seconds), args, rate=args.rate)
            return 0 if rated["missing"] == 0 and rated["multi"] == 0 else 1
        base = run_phase("fsync-each", workdir, args.baseline_events, args, group_commit=False)
        # Variants run interleaved (A B C A B C ...) so a change in the machine's load hits all
        # of them alike; medians over --repeat rounds are compared.
        variants: list[tuple[str, Path, int]] = [("", ROOT, 1)]
        if args.workers > 1:
            variants.append((f"-{args.workers}w", ROOT, args.workers))
        if args.baseline_checkout:
            variants.append(("@base", args.baseline_checkout.resolve(), 1))
        runs: dict[tuple[str, str], list[dict[str, float]]] = collections.defaultdict(list)
        n_open = int(args.rate * args.seconds)
        for round_ in range(args.repeat):
            tag = f"#{round_ + 1}" if args.repeat > 1 else ""
            for suffix, code, workers in variants:
                runs["closed", suffix].append(
                    run_phase(
                        f"closed{suffix}{tag}",
                        workdir,
                        args.closed_events,
                        args,
                        code=code,
                        workers=workers,
                    )
                )
            for suffix, code, workers in variants:
                runs["open", suffix].append(
                    run_phase(
                        f"open{suffix}{tag}",
                        workdir,
                        n_open,
                        args,
                        rate=args.rate,
                        code=code,
                        workers=workers,
                    )
                )
    med = {key: _medians(values) for key, values in runs.items()}
    names = {"": "this receiver, 1 process", "@base": f"receiver of {args.baseline_checkout}"}
    names[f"-{args.workers}w"] = f"this receiver, {args.workers} HTTP workers + lander"
    print(f"medians over {args.repeat} interleaved round(s):")
    for (loop, suffix), m in med.items():
        print(
            f"  {loop:<6} {names[suffix]:<48} {m['rate']:6.0f} verified events/s  "
            f"p50 {m['p50']:8.1f} ms  p99 {m['p99']:8.1f} ms  receiver CPU {m['cpu_us']:4.0f} us/event"
        )
    for loop in ("closed", "open"):
        one = med[loop, ""]
        for suffix, _, _ in variants[1:]:
            other = med[loop, suffix]
            print(
                f"{loop} loop, this receiver (1 process) vs {names[suffix]}: "
                f"{one['rate'] / max(other['rate'], 1e-9):.2f}x verified events/s, "
                f"{other['cpu_us'] / max(one['cpu_us'], 1e-9):.2f}x less receiver CPU per event"
            )
    closed = med["closed", ""]
    print(
        f"closed loop, group commit vs one fsync per event: {closed['rate'] / base['rate']:.1f}x "
        f"({closed['rate']:.0f} vs {base['rate']:.0f} events/s)"
    )
    for suffix, _, _ in variants:
        if suffix == "@base":
            continue
        m = med["open", suffix]
        goal = m["rate"] >= GOAL_RATE and m["p99"] < GOAL_P99_MS and m["complete"] == 1.0
        print(
            f"goal >= {GOAL_RATE:.0f} verified events/s with p99 < {GOAL_P99_MS:.0f} ms "
            f"({names[suffix]}, open loop at {args.rate:.0f}/s): {'MET' if goal else 'NOT MET'}"
        )
    exact = all(p["missing"] == 0 and p["multi"] == 0 for p in PHASES)
    print(f"every acknowledged event landed exactly once: {'YES' if exact else 'NO'}")
    return 0 if exact else 1


def _medians(values: list[dict[str, float]]) -> dict[str, float]:
    medians = {k: statistics.median(v[k] for v in values) for k in ("rate", "p50", "p99", "cpu_us")}
    medians["complete"] = min(v["complete"] for v in values)
    return medians


if __name__ == "__main__":
    raise SystemExit(main())
