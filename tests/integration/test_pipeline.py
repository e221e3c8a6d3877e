"""The whole pipeline through the real CLI: Go-encoded records in a real Redis →
``pump run --once`` → sinks → nothing left behind in Redis."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from pump.delivery.deadletter import Entry
from tests.helpers import (
    BASE_LIST,
    client,
    list_lengths,
    msgpack_payloads,
    numbered,
    protobuf_payloads,
    pump_keys,
    push,
    run_once,
    write_config,
)

pytestmark = pytest.mark.integration


def csv_rows(directory: Path) -> list[list[str]]:
    rows: list[list[str]] = []
    for path in sorted(directory.glob("*.csv")):
        with path.open(newline="") as fh:
            body = list(csv.reader(fh))
        assert body[0][0] == "Method", "every file starts with Tyk's header"
        rows.extend(body[1:])
    return rows


def test_tyk_pump_conf_20000_records_on_three_keys_exactly_once(tmp_path: Path, redis_url: str) -> None:
    """Issue #2: a Tyk JSON pump.conf with one csv pump; 20,000 Go-msgpack records on three of
    the 22 keys; one ``pump run --once`` puts each record in the CSV exactly once and empties
    the lists."""
    records = numbered(20000)
    payloads = msgpack_payloads(records)
    keys = [BASE_LIST, f"{BASE_LIST}_3", f"{BASE_LIST}_9"]
    for i, key in enumerate(keys):
        push(redis_url, payloads[i::3], key)
    config = write_config(tmp_path / "pump.conf", redis_url, {"csv": {"type": "csv", "meta": {"csv_dir": str(tmp_path / "csv")}}})
    proc = run_once(config)
    assert proc.returncode == 0, proc.stderr
    paths = Counter(row[2] for row in csv_rows(tmp_path / "csv"))
    assert len(paths) == 20000 and set(paths.values()) == {1}
    assert paths.keys() == {r.path for r in records}
    assert list_lengths(redis_url) == {}
    assert pump_keys(redis_url) == []


def test_protobuf_and_msgpack_lists_and_two_pumps(tmp_path: Path, redis_url: str) -> None:
    records = numbered(300, api_id="api-1")
    push(redis_url, msgpack_payloads(records[:200]), f"{BASE_LIST}_1")
    push(redis_url, protobuf_payloads(records[200:]), f"{BASE_LIST}_1_protobuf")
    pumps = {
        "csv": {"type": "csv", "meta": {"csv_dir": str(tmp_path / "csv")}},
        "errors": {"type": "csv", "meta": {"csv_dir": str(tmp_path / "errors")}, "filters": {"response_codes": [500]}},
    }
    proc = run_once(write_config(tmp_path / "pump.conf", redis_url, pumps))
    assert proc.returncode == 0, proc.stderr
    assert sorted(r[2] for r in csv_rows(tmp_path / "csv")) == sorted(r.path for r in records)
    assert not (tmp_path / "errors").exists() or csv_rows(tmp_path / "errors") == []
    assert pump_keys(redis_url) == []


def test_undecodable_payloads_are_dead_lettered_with_a_reason(tmp_path: Path, redis_url: str) -> None:
    good = msgpack_payloads(numbered(50))
    bad = [b"\x00garbage", b"", json.dumps({"method": "GET"}).encode()]
    push(redis_url, good[:25] + bad + good[25:])
    proc = run_once(write_config(tmp_path / "pump.conf", redis_url, {"csv": {"type": "csv", "meta": {"csv_dir": str(tmp_path / "csv")}}}))
    assert proc.returncode == 0, proc.stderr
    assert len(csv_rows(tmp_path / "csv")) == 50
    entries = [Entry.decode(e) for e in client(redis_url).lrange("pump:deadletter:undecodable", 0, -1)]
    assert sorted(e.payload for e in entries) == sorted(bad)
    assert all(e.reason and e.source == BASE_LIST for e in entries)


def test_deadletter_cli_lists_replays_and_purges(tmp_path: Path, redis_url: str) -> None:
    from tests.helpers import run_pump

    push(redis_url, [b"\xc1not-a-record"])
    config = write_config(tmp_path / "pump.conf", redis_url, {"csv": {"type": "csv", "meta": {"csv_dir": str(tmp_path / "csv")}}})
    assert run_once(config).returncode == 0
    listed = run_pump("deadletter", "list", "--config", str(config))
    assert "pump:deadletter:undecodable: 1 entry" in listed.stdout and "not msgpack" in listed.stdout
    replayed = run_pump("deadletter", "replay", "--config", str(config), "--pump", "undecodable")
    assert "replayed 1" in replayed.stdout
    assert client(redis_url).lrange(BASE_LIST, 0, -1) == [b"\xc1not-a-record"]
    assert run_once(config).returncode == 0  # dead-lettered again, still not lost
    purged = run_pump("deadletter", "purge", "--config", str(config), "--pump", "undecodable")
    assert "purged 1" in purged.stdout and client(redis_url).llen("pump:deadletter:undecodable") == 0
