"""Nothing is lost: crash loops, a sink that goes away and comes back, Redis restarting under the
pump, and hostile payloads. Real redis-server, real CLI processes, real SIGKILL.

These tests assert counts, never timings."""

from __future__ import annotations

import csv
import io
import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import msgpack
import pytest

from pump.delivery.deadletter import Entry
from tests import servers
from tests.helpers import (
    BASE_LIST,
    ROOT,
    client,
    list_lengths,
    msgpack_payloads,
    numbered,
    pump_cmd,
    pump_keys,
    push,
    run_once,
    write_config,
)

pytestmark = pytest.mark.integration


def start_daemon(config: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(pump_cmd("run", "--config", str(config)), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log.open("ab"))


def wait_for(condition: Callable[[], bool], timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the pump exited ({proc.returncode}) while waiting for: {what}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for: {what}")


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=60)


def paths_in(directory: Path) -> Counter[str]:
    """The paths in the CSV files, read while the pump may be appending: a file's last line
    without its newline is an append in progress, not counted yet (a row is read whole)."""
    paths: Counter[str] = Counter()
    for path in sorted(directory.glob("*.csv")) if directory.exists() else ():
        data = path.read_bytes()
        rows = list(csv.reader(io.StringIO(data[: data.rfind(b"\n") + 1].decode("utf-8", "surrogateescape"), newline="")))
        assert rows and rows[0][0] == "Method", f"{path.name} starts with Tyk's header"
        paths.update(row[2] for row in rows[1:])
    return paths


def test_five_sigkills_while_draining_90000_records_lose_nothing(tmp_path: Path, redis_url: str) -> None:
    # Enough that five runs of up to ~0.6 s each cannot drain it all on a fast machine (30,000
    # were drained before the fifth kill on a quiet 2-core machine): every kill must land mid-way.
    records = numbered(90000)
    payloads = msgpack_payloads(records)
    for i, key in enumerate([BASE_LIST, f"{BASE_LIST}_0", f"{BASE_LIST}_5"]):
        push(redis_url, payloads[i::3], key)
    out = tmp_path / "csv"
    # small claims, one batch in flight: the drain takes several seconds, so every kill lands mid-way
    config = write_config(
        tmp_path / "pump.conf", redis_url, {"csv": {"type": "csv", "meta": {"csv_dir": str(out)}}},
        purge_chunk=300, delivery={"max_batches_in_flight": 1},
    )  # fmt: skip
    rng = random.Random(5)
    killed_mid_drain = 0
    for _ in range(5):
        proc = start_daemon(config, tmp_path / "pump.log")
        before = sum(paths_in(out).values())
        # kill at a random moment once it has started writing (or after a random delay)
        deadline = time.monotonic() + rng.uniform(0.0, 0.4)
        wait_for(lambda b=before: sum(paths_in(out).values()) > b or not list_lengths(redis_url), 30, "the pump to write", proc)
        while time.monotonic() < deadline:
            time.sleep(0.02)
        killed_mid_drain += bool(list_lengths(redis_url))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    proc_once = run_once(config)
    assert proc_once.returncode == 0, proc_once.stderr
    seen = paths_in(out)
    assert seen.keys() == {r.path for r in records}, "every record is in the CSV"
    duplicates = sum(seen.values()) - len(seen)
    print(f"\n[sigkill] kills with records still in Redis: {killed_mid_drain}/5; CSV rows {sum(seen.values())}; duplicates {duplicates}")
    assert killed_mid_drain == 5
    assert list_lengths(redis_url) == {}, "the source lists are empty"
    assert pump_keys(redis_url) == [], "no processing list, lease, marker or backlog is left"


def test_a_failing_pump_parks_its_share_and_catches_up_while_the_other_keeps_delivering(tmp_path: Path, redis_url: str) -> None:
    """The second pump's directory is unusable (a file sits where it should be) for a while."""
    healthy, flaky = tmp_path / "healthy", tmp_path / "flaky"
    flaky.write_text("not a directory")
    pumps = {
        "healthy": {"type": "csv", "meta": {"csv_dir": str(healthy)}},
        "flaky": {"type": "csv", "meta": {"csv_dir": str(flaky)}},
    }
    config = write_config(
        tmp_path / "pump.conf", redis_url, pumps, purge_chunk=1000,
        delivery={"backoff_initial": 0.1, "backoff_max": 0.5, "queue_records": 2000},
    )  # fmt: skip
    proc = start_daemon(config, tmp_path / "pump.log")
    try:
        first = numbered(6000, api_id="wave-1")
        push(redis_url, msgpack_payloads(first))
        wait_for(lambda: len(paths_in(healthy)) == 6000, 60, "the healthy pump to deliver wave 1 during the outage", proc)
        second = [r for r in numbered(4000, api_id="wave-2")]
        for r in second:
            r.path = r.path.replace("/items/", "/wave2/")
        push(redis_url, msgpack_payloads(second))
        wait_for(lambda: len(paths_in(healthy)) == 10000, 60, "the healthy pump to deliver wave 2 during the outage", proc)
        assert not flaky.is_dir()
        assert client(redis_url).llen("pump:backlog:flaky") > 0, "the failing pump's share waits in its own backlog"
        assert list_lengths(redis_url) == {}, "the gateway lists are drained meanwhile"
        flaky.unlink()  # the outage ends
        wait_for(lambda: len(paths_in(flaky)) == 10000, 120, "the flaky pump to catch up from its backlog", proc)
    finally:
        code = stop(proc)
    assert code == 0
    assert paths_in(healthy).keys() == paths_in(flaky).keys()
    assert set(paths_in(healthy).values()) == {1}
    assert pump_keys(redis_url) == []


def test_redis_crash_and_restart_mid_run_loses_nothing(tmp_path: Path) -> None:
    if os.environ.get("PUMP_TEST_REDIS_URL"):
        pytest.skip("needs a Redis this test can kill and restart; unset PUMP_TEST_REDIS_URL")
    work = tmp_path / "redis"
    srv = servers.start("redis", work, appendonly=True)
    try:
        records = numbered(30000)
        push(srv.url, msgpack_payloads(records))
        out = tmp_path / "csv"
        config = write_config(tmp_path / "pump.conf", srv.url, {"csv": {"type": "csv", "meta": {"csv_dir": str(out)}}}, purge_chunk=300)
        proc = start_daemon(config, tmp_path / "pump.log")
        try:
            wait_for(lambda: len(paths_in(out)) > 1000, 60, "the pump to start writing", proc)
            assert srv.process is not None
            srv.process.send_signal(signal.SIGKILL)
            srv.process.wait()
            time.sleep(2)
            assert proc.poll() is None, "the pump keeps running while Redis is gone"
            srv = servers.start("redis", work, appendonly=True, port=srv.port)
            wait_for(lambda: len(paths_in(out)) == 30000, 120, "every record after Redis came back", proc)
            wait_for(
                lambda: not list_lengths(srv.url) and not [k for k in pump_keys(srv.url) if ":instance:" not in k],
                60,
                "Redis to be drained",
                proc,
            )
        finally:
            code = stop(proc)
        assert code == 0
        seen = paths_in(out)
        assert seen.keys() == {r.path for r in records}
        print(f"\n[redis restart] CSV rows {sum(seen.values())}; duplicates {sum(seen.values()) - len(seen)}")
        log = (tmp_path / "pump.log").read_text()
        assert "Redis unavailable; retrying." in log
    finally:
        srv.stop()


def corrupt(rng: random.Random, good: bytes) -> bytes:
    """A payload no Tyk gateway would send; each kind is undecodable by construction."""
    kind = rng.randrange(6)
    if kind == 0:
        return good[: rng.randrange(1, len(good) - 1)]  # truncated msgpack
    if kind == 1:
        return b"\xc1" + rng.randbytes(rng.randrange(0, 200))  # 0xc1 is never used by msgpack
    if kind == 2:
        return msgpack.packb({"Method": rng.randrange(1000), "APIID": "x"})  # wrong type
    if kind == 3:
        return msgpack.packb([rng.random() for _ in range(rng.randrange(1, 5))])  # not a map
    if kind == 4:
        return b'{"method": "GET", "path": "/json-is-not-msgpack"}'
    return msgpack.packb({"Method": "GET", "TimeStamp": [rng.randrange(10**13, 10**15), 0]})  # time out of range


def test_ten_thousand_corrupt_payloads_mixed_with_good_ones(tmp_path: Path, redis_url: str) -> None:
    rng = random.Random(99)
    records = numbered(10000)
    good = msgpack_payloads(records)
    bad = [corrupt(rng, rng.choice(good)) for _ in range(10000)]
    mixed = good + bad
    rng.shuffle(mixed)
    for i, key in enumerate([BASE_LIST, f"{BASE_LIST}_1"]):
        push(redis_url, mixed[i::2], key)
    out = tmp_path / "csv"
    proc = run_once(write_config(tmp_path / "pump.conf", redis_url, {"csv": {"type": "csv", "meta": {"csv_dir": str(out)}}}))
    assert proc.returncode == 0, proc.stderr
    assert paths_in(out).keys() == {r.path for r in records} and sum(paths_in(out).values()) == 10000
    entries = [Entry.decode(e) for e in client(redis_url).lrange("pump:deadletter:undecodable", 0, -1)]
    assert len(entries) == 10000
    assert Counter(e.payload for e in entries) == Counter(bad)
    assert all(e.reason for e in entries)
    assert list_lengths(redis_url) == {}
