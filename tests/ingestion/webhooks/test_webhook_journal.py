"""Landing-zone journal: reader cursor, torn last lines after a crash, restart repair."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from ingestion.webhooks import iter_landed_events
from ingestion.webhooks.journal import encode_line, load_dedup_index, repair_torn_tails
from tests.ingestion.webhooks.webhook_helpers import journal_lines, stripe_event, stripe_headers

STRIPE = "/webhooks/stripe"


def _line(event_id: str) -> bytes:
    return encode_line(
        received_at="2026-09-21T00:00:00+00:00",
        source="stripe",
        event_id=event_id,
        event_type="charge.succeeded",
        signature_verified=True,
        body=json.dumps({"id": event_id}),
    )


def _segment(landing: Path, name: str = "events-1-a.jsonl") -> Path:
    path = landing / "webhooks" / "stripe" / "2026-09-21" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_cursor_reads_only_new_events(client, tmp_path):
    landing = tmp_path / "landing"
    for i in range(3):
        body = stripe_event(f"evt_r{i}")
        client.post(STRIPE, content=body, headers=stripe_headers(body))
    events, cursor = iter_landed_events(landing, {})
    assert [e.event_id for e in events] == ["evt_r0", "evt_r1", "evt_r2"]
    assert json.loads(events[0].body)["id"] == "evt_r0"
    assert all(isinstance(v, int) for v in cursor.values())
    body = stripe_event("evt_r3")
    client.post(STRIPE, content=body, headers=stripe_headers(body))
    more, cursor2 = iter_landed_events(landing, cursor)
    assert [e.event_id for e in more] == ["evt_r3"]
    assert iter_landed_events(landing, cursor2)[0] == []


def test_max_events_pages_through(tmp_path):
    path = _segment(tmp_path)
    path.write_bytes(b"".join(_line(f"evt_{i}") for i in range(5)))
    first, cur = iter_landed_events(tmp_path, None, max_events=2)
    rest, _ = iter_landed_events(tmp_path, cur)
    assert [e.event_id for e in first + rest] == [f"evt_{i}" for i in range(5)]


def test_torn_last_line_is_not_read_until_complete(tmp_path):
    path = _segment(tmp_path)
    full = _line("evt_b")
    path.write_bytes(_line("evt_a") + full[:20])
    events, cursor = iter_landed_events(tmp_path, {})
    assert [e.event_id for e in events] == ["evt_a"]
    with path.open("ab") as fh:
        fh.write(full[20:])
    events, _ = iter_landed_events(tmp_path, cursor)
    assert [e.event_id for e in events] == ["evt_b"]


def test_corrupt_line_is_skipped_not_fatal(tmp_path):
    path = _segment(tmp_path)
    path.write_bytes(_line("evt_a") + b"\x00\x00garbage\n" + _line("evt_c"))
    events, _ = iter_landed_events(tmp_path, {})
    assert [e.event_id for e in events] == ["evt_a", "evt_c"]
    assert load_dedup_index(tmp_path) == {("stripe", "evt_a"), ("stripe", "evt_c")}


def test_restart_repairs_torn_tail_and_accepts_the_retry(make_client, tmp_path):
    landing = tmp_path / "landing"
    path = _segment(landing, "events-999-dead.jsonl")
    path.write_bytes(_line("evt_done") + _line("evt_torn")[:30])
    assert repair_torn_tails(landing) == 1
    assert path.read_bytes() == _line("evt_done")
    path.write_bytes(_line("evt_done") + _line("evt_torn")[:30])
    client = make_client()  # start-up repairs and rebuilds the dedup index
    done = stripe_event("evt_done")
    torn = stripe_event("evt_torn")
    assert client.post(STRIPE, content=done, headers=stripe_headers(done)).json() == {
        "status": "duplicate"
    }
    assert client.post(STRIPE, content=torn, headers=stripe_headers(torn)).json() == {
        "status": "accepted"
    }
    assert sorted(x["event_id"] for x in journal_lines(landing)) == ["evt_done", "evt_torn"]


def test_fsync_failure_answers_503_and_leaves_no_line(client, tmp_path, monkeypatch):
    """A failing disk (EIO on fsync) must never produce a 2xx; the retry then lands once."""
    import errno
    import os

    import ingestion.webhooks.journal as journal_module

    real_fsync = os.fsync
    failures = {"left": 1}

    def flaky_fsync(fd: int) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    body = stripe_event("evt_eio")
    warm = stripe_event("evt_warm")  # opens the segment file (and fsyncs its directory) first
    assert client.post(STRIPE, content=warm, headers=stripe_headers(warm)).status_code == 200
    monkeypatch.setattr(journal_module.os, "fsync", flaky_fsync)
    resp = client.post(STRIPE, content=body, headers=stripe_headers(body))
    assert resp.status_code == 503
    assert [x["event_id"] for x in journal_lines(tmp_path / "landing")] == ["evt_warm"]
    retry = client.post(STRIPE, content=body, headers=stripe_headers(body))
    assert retry.json() == {"status": "accepted"}
    ids = [x["event_id"] for x in journal_lines(tmp_path / "landing")]
    assert sorted(ids) == ["evt_eio", "evt_warm"]


@settings(max_examples=200, deadline=None)
@given(
    body=st.text(),
    event_id=st.text(max_size=40),
    verified=st.booleans(),
)
def test_encode_line_is_compact_ascii_json_of_the_record(body, event_id, verified):
    """The hand-built line is byte for byte what json.dumps of the record gives: one ASCII line."""
    fields = {
        "received_at": "2026-09-21T00:00:00+00:00",
        "source": "stripe",
        "event_id": event_id,
        "event_type": "charge.succeeded",
        "signature_verified": verified,
        "body": body,
    }
    line = encode_line(**fields)
    assert line == (json.dumps(fields, ensure_ascii=True, separators=(",", ":")) + "\n").encode()
    assert line.count(b"\n") == 1 and line.isascii()
    assert json.loads(line) == fields
