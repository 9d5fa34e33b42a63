"""billing_jobs.storage against a real S3 API server: locations, the start-up check, mirror."""

from __future__ import annotations

import time

import pytest

from billing_jobs import storage
from billing_jobs.storage import (
    S3Store,
    Shipper,
    StorageError,
    check_location,
    mirror,
    split_s3,
)


def test_locations_parse_and_bad_ones_are_named() -> None:
    assert split_s3("s3://bucket/a/b/") == ("bucket", "a/b")
    assert split_s3("S3://bucket") == ("bucket", "")
    for bad, needle in [
        ("s3:///nobucket", "expected s3://bucket"),
        ("s3://b/x/../y", "'..'"),
        ("s3://b/x?versionId=1", "no query"),
    ]:
        with pytest.raises(StorageError, match=needle.replace("?", r"\?").replace(".", r"\.")):
            split_s3(bad)
    with pytest.raises(StorageError, match="PAYSIGHT_X: ftp:// locations are not supported"):
        check_location("ftp://host/dir", "PAYSIGHT_X")
    check_location("/some/local/dir", "PAYSIGHT_X")  # a local path needs no store


def test_start_up_check_names_a_missing_bucket_and_an_unreachable_store(s3, monkeypatch):
    check_location("s3://paysight-test/landing", "PAYSIGHT_LANDING_URL")
    with pytest.raises(StorageError, match=r"PAYSIGHT_LANDING_URL: .*'no-such-bucket' does not"):
        check_location("s3://no-such-bucket/landing", "PAYSIGHT_LANDING_URL")
    monkeypatch.setenv("S3_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on port 9
    with pytest.raises(StorageError, match="cannot reach the object store"):
        check_location("s3://paysight-test/landing", "PAYSIGHT_LANDING_URL")


def test_mirror_ships_complete_lines_fetches_elsewhere_and_is_idempotent(s3, tmp_path):
    store = S3Store.from_url("s3://paysight-test/landing")
    here = tmp_path / "here"
    seg = here / "webhooks" / "stripe" / "2025-05-01" / "events-1-a.jsonl"
    seg.parent.mkdir(parents=True)
    seg.write_bytes(b'{"n": 1}\n{"n": 2}\n{"n": 3, "torn')  # a writer mid-line
    (here / "bank").mkdir()
    (here / "bank" / "2025-05-02.csv").write_text("a,b\n1,2\n")
    (here / "bank" / ".2025-05-03.csv.part").write_text("half")  # a temporary file: never shipped
    first = mirror(store, here)
    assert sorted(first.uploaded) == ["bank/2025-05-02.csv", seg.relative_to(here).as_posix()]
    key = "landing/" + seg.relative_to(here).as_posix()
    assert s3.get_object(Bucket="paysight-test", Key=key)["Body"].read() == b'{"n": 1}\n{"n": 2}\n'
    assert mirror(store, here).uploaded == []  # nothing changed: nothing written
    with seg.open("ab") as f:
        f.write(b'"}\n')  # the line completes: the longer copy is shipped
    assert mirror(store, here).uploaded == [seg.relative_to(here).as_posix()]

    there = tmp_path / "there"  # another machine: fetches everything, byte for byte
    assert sorted(mirror(store, there).downloaded) == sorted(first.uploaded)
    assert (there / seg.relative_to(here)).read_bytes() == seg.read_bytes()
    assert mirror(store, there).downloaded == []


@pytest.mark.parametrize("key", ["landing/../escape.txt", "landing//abs.txt", "landing/.hidden"])
def test_hostile_object_keys_are_never_written_locally(s3, tmp_path, key):
    s3.put_object(Bucket="paysight-test", Key=key, Body=b"x")
    s3.put_object(Bucket="paysight-test", Key="landing/ok.txt", Body=b"y")
    report = mirror(S3Store.from_url("s3://paysight-test/landing"), tmp_path / "local")
    assert report.downloaded == ["ok.txt"]
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["ok.txt"]


def test_a_store_that_disappears_is_a_clear_error_and_local_files_stay(s3, tmp_path):
    local = tmp_path / "local"
    local.mkdir()
    (local / "a.csv").write_text("kept\n")
    with pytest.raises(StorageError, match="s3://gone"):
        mirror(S3Store.from_url("s3://gone/x"), local)
    assert (local / "a.csv").read_text() == "kept\n"
    assert storage.is_remote("s3://b") and not storage.is_remote("/tmp/x")


def test_the_receivers_shipper_uploads_while_running_and_once_more_on_stop(s3, tmp_path):
    store = S3Store.from_url("s3://paysight-test/landing")
    seg = tmp_path / "webhooks" / "simulated" / "2025-05-01" / "events-1-b.jsonl"
    seg.parent.mkdir(parents=True)
    seg.write_bytes(b'{"n": 1}\n')
    key = "landing/webhooks/simulated/2025-05-01/events-1-b.jsonl"
    shipper = Shipper(store, tmp_path, interval=0.05).start()
    deadline = time.monotonic() + 10
    while shipper.shipped == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert s3.get_object(Bucket="paysight-test", Key=key)["Body"].read() == b'{"n": 1}\n'
    with seg.open("ab") as f:
        f.write(b'{"n": 2}\n')
    shipper.stop()  # the last lines are shipped before the receiver exits
    assert s3.get_object(Bucket="paysight-test", Key=key)["Body"].read() == seg.read_bytes()
    assert store.sizes().keys() == {key.removeprefix("landing/")}


def test_a_shipper_whose_store_fails_keeps_everything_and_says_why(s3, tmp_path):
    (tmp_path / "a.jsonl").write_bytes(b"{}\n")
    shipper = Shipper(S3Store.from_url("s3://gone/landing"), tmp_path, interval=60).start()
    shipper.stop()
    assert shipper.shipped == 0 and "s3://gone" in (shipper.last_error or "")
    assert (tmp_path / "a.jsonl").read_bytes() == b"{}\n"


def test_a_wrong_credential_is_named_at_start_up_and_loses_nothing(s3, tmp_path, monkeypatch):
    import moto.settings

    # The server checks every request's signature against its IAM users from now on, so an
    # access key it never issued is refused as it would be by AWS.
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG0")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(StorageError, match=r"PAYSIGHT_DOCUMENTS_URL: .*access to bucket .* denied"):
        check_location("s3://paysight-test/documents", "PAYSIGHT_DOCUMENTS_URL")
    (tmp_path / "invoice.pdf").write_bytes(b"%PDF-1.7 kept")
    with pytest.raises(StorageError, match="s3://paysight-test/documents"):
        mirror(S3Store.from_url("s3://paysight-test/documents"), tmp_path)
    assert (tmp_path / "invoice.pdf").read_bytes() == b"%PDF-1.7 kept"
