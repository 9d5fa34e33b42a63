"""One socket write per response: the coalescing transport joins writes of a loop iteration."""

from __future__ import annotations

import asyncio
import socket
import time
from urllib.parse import urlparse

from ingestion.webhooks.transport import CoalescingTransport
from tests.ingestion.webhooks.webhook_helpers import journal_lines, stripe_headers


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 1) if name == "peername" else default


def test_writes_in_one_iteration_leave_as_one_and_close_flushes_first():
    async def scenario() -> RecordingTransport:
        real = RecordingTransport()
        wrapped = CoalescingTransport(real, asyncio.get_running_loop())
        wrapped.write(b"HTTP/1.1 200 OK\r\n\r\n")
        wrapped.write(memoryview(b'{"status":"accepted"}'))
        assert real.writes == []  # nothing sent before the loop iteration ends
        await asyncio.sleep(0)
        assert real.writes == [b'HTTP/1.1 200 OK\r\n\r\n{"status":"accepted"}']
        wrapped.write(b"last")
        wrapped.close()  # queued bytes go out before the close
        assert real.writes[-1] == b"last" and real.closed
        assert wrapped.get_extra_info("peername") == ("127.0.0.1", 1)  # everything else forwarded
        await asyncio.sleep(0)
        assert len(real.writes) == 2
        return real

    asyncio.run(scenario())


def _request(event_id: str, host: str) -> bytes:
    body = f'{{"id":"{event_id}","object":"event","type":"charge.succeeded"}}'.encode()
    sig = stripe_headers(body, t=time.time())["Stripe-Signature"]
    return (
        f"POST /webhooks/stripe HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
        f"Stripe-Signature: {sig}\r\n\r\n"
    ).encode() + body


def test_live_keep_alive_and_pipelined_requests_get_whole_responses(live_server):
    parsed = urlparse(live_server.url)
    host = f"{parsed.hostname}:{parsed.port}"
    # Three requests in one packet on one connection, the last a duplicate of the first.
    payload = _request("evt_p1", host) + _request("evt_p2", host) + _request("evt_p1", host)
    with socket.create_connection((parsed.hostname, parsed.port), timeout=10) as sock:
        sock.sendall(payload)
        data = b""
        while data.count(b"HTTP/1.1 200") < 3 or not data.endswith(b"}"):
            chunk = sock.recv(65536)
            assert chunk, f"connection closed early after {data!r}"
            data += chunk
    answers = data.split(b"HTTP/1.1 ")[1:]
    assert [a[:3] for a in answers] == [b"200"] * 3
    assert [a.rsplit(b"\r\n\r\n", 1)[1] for a in answers] == [
        b'{"status":"accepted"}',
        b'{"status":"accepted"}',
        b'{"status":"duplicate"}',
    ]
    assert sorted(x["event_id"] for x in journal_lines(live_server.landing)) == ["evt_p1", "evt_p2"]
