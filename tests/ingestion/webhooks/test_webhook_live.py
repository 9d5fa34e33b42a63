"""End-to-end: the real app under uvicorn on 127.0.0.1, spoken to over real sockets."""

from __future__ import annotations

import asyncio
import socket
import time
from urllib.parse import urlparse

import httpx

from ingestion.webhooks import iter_landed_events
from ingestion.webhooks.signatures import stripe_signature
from tests.ingestion.webhooks.webhook_helpers import (
    journal_lines,
    razorpay_event,
    razorpay_headers,
    stripe_headers,
)


def _stripe(event_id: str) -> tuple[bytes, dict]:
    body = f'{{"id":"{event_id}","object":"event","type":"charge.succeeded"}}'.encode()
    return body, stripe_headers(body, t=time.time())


def test_live_accept_duplicate_and_read_back(live_server):
    body, headers = _stripe("evt_live_1")
    with httpx.Client(base_url=live_server.url) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        assert http.post("/webhooks/stripe", content=body, headers=headers).json() == {
            "status": "accepted"
        }
        # The line is on disk at the moment the 200 arrives.
        assert [x["event_id"] for x in journal_lines(live_server.landing)] == ["evt_live_1"]
        assert http.post("/webhooks/stripe", content=body, headers=headers).json() == {
            "status": "duplicate"
        }
        rbody = razorpay_event()
        resp = http.post("/webhooks/razorpay", content=rbody, headers=razorpay_headers(rbody))
        assert resp.json() == {"status": "accepted"}
        bad = http.post("/webhooks/stripe", content=body + b" ", headers=headers)
        assert bad.status_code == 400
    events, cursor = iter_landed_events(live_server.landing, {})
    assert sorted(e.event_id for e in events) == ["Evt_RZP_1", "evt_live_1"]
    assert iter_landed_events(live_server.landing, cursor) == ([], cursor)


def test_live_concurrent_senders_land_each_event_exactly_once(live_server):
    ids = [f"evt_c{i}" for i in range(60)]

    async def send_all() -> list[str]:
        async with httpx.AsyncClient(base_url=live_server.url) as http:

            async def send(event_id: str) -> str:
                body, headers = _stripe(event_id)
                resp = await http.post("/webhooks/stripe", content=body, headers=headers)
                return resp.json()["status"]

            # Each id is sent three times at once: one accepted, two duplicates.
            return await asyncio.gather(*(send(i) for i in ids * 3))

    statuses = asyncio.run(send_all())
    assert statuses.count("accepted") == len(ids)
    assert statuses.count("duplicate") == 2 * len(ids)
    landed = [x["event_id"] for x in journal_lines(live_server.landing)]
    assert sorted(landed) == sorted(ids)


def _raw_request(url: str, data: bytes) -> bytes:
    parsed = urlparse(url)
    with socket.create_connection((parsed.hostname, parsed.port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks):
                break  # the status and headers are all these tests need
        return b"".join(chunks)


def test_live_hostile_transport_inputs(live_server):
    # A megabyte of header: uvicorn refuses it, and the receiver keeps serving.
    huge = b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nStripe-Signature: " + b"a" * 1_000_000
    answer = _raw_request(live_server.url, huge + b"\r\nContent-Length: 2\r\n\r\n{}")
    assert answer == b"" or answer.split(b" ")[1].startswith(b"4")
    # A lying negative Content-Length.
    answer = _raw_request(
        live_server.url,
        b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n"
        b"Connection: close\r\n\r\n{}",
    )
    assert answer.split(b" ")[1].startswith(b"4")
    # Chunked body past 1 MiB without Content-Length: 413 without reading it all.
    ts = int(time.time())
    head = (
        b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        + f"Stripe-Signature: t={ts},v1={stripe_signature('whsec_stripe_current', ts, b'')}".encode()
        + b"\r\nConnection: close\r\n\r\n"
    )
    chunk = b"x" * 65536
    body = b"".join(b"%x\r\n" % len(chunk) + chunk + b"\r\n" for _ in range(20)) + b"0\r\n\r\n"
    answer = _raw_request(live_server.url, head + body)
    assert answer.split(b" ")[1] == b"413"
    with httpx.Client(base_url=live_server.url) as http:
        assert http.get("/healthz").status_code == 200
    assert journal_lines(live_server.landing) == []


def test_live_client_gone_mid_body_lands_nothing_and_server_keeps_serving(live_server):
    parsed = urlparse(live_server.url)
    body, headers = _stripe("evt_half")
    head = (
        f"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
        f"Stripe-Signature: {headers['Stripe-Signature']}\r\n\r\n"
    ).encode()
    with socket.create_connection((parsed.hostname, parsed.port), timeout=10) as sock:
        sock.sendall(head + body[: len(body) // 2])  # then hang up without the rest
    with httpx.Client(base_url=live_server.url) as http:
        # The full retry is accepted: the half-sent attempt left nothing behind.
        resp = http.post("/webhooks/stripe", content=body, headers=headers)
        assert resp.json() == {"status": "accepted"}
    assert [x["event_id"] for x in journal_lines(live_server.landing)] == ["evt_half"]
