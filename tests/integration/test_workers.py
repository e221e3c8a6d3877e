"""``pump run --workers N`` (issue 15 item 2): N claiming processes under one supervisor, real
redis-server, real SQLite and CSV, real SIGKILL of a worker."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import BASE_LIST, ROOT, list_lengths, msgpack_payloads, numbered, pump_cmd, push, run_pump, write_config
from tests.integration.test_pipeline import csv_rows

pytestmark = pytest.mark.integration

N = 20_000


def sqlite_paths(db: Path) -> Counter[str]:
    if not db.exists():
        return Counter()
    with sqlite3.connect(db) as conn:
        try:
            return Counter(r[0] for r in conn.execute("SELECT path FROM tyk_analytics"))
        except sqlite3.OperationalError:  # the table is not created yet
            return Counter()


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as fh:
        return [int(p) for p in fh.read().split()]


def wait_for(condition: object, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"never happened within {seconds} s: {what}")


def test_two_workers_drain_every_record_once_into_sqlite_and_whole_rows_into_one_csv(tmp_path: Path, redis_url: str) -> None:
    records = numbered(N, tags=["x,y", 'quoted "tag"'])
    for i in range(4):  # four gateway lists: both workers have claims to make
        push(redis_url, msgpack_payloads(records[i::4]), BASE_LIST if i == 0 else f"{BASE_LIST}_{i}")
    db, out = tmp_path / "a.db", tmp_path / "csv"
    pumps = {
        "sqlite": {"type": "sql", "meta": {"type": "sqlite", "connection_string": str(db)}},
        "csv": {"type": "csv", "meta": {"csv_dir": str(out)}},
    }
    config = write_config(tmp_path / "pump.conf", redis_url, pumps, purge_chunk=500)
    proc = run_pump("run", "--once", "--workers", "2", "--config", str(config))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("Worker started.") == 2
    expected = Counter(r.path for r in records)
    assert sqlite_paths(db) == expected  # every record exactly once
    rows = csv_rows(out)
    assert Counter(len(r) for r in rows) == Counter({42: N})  # whole rows only, none interleaved
    assert Counter(r[2] for r in rows) == expected
    assert list_lengths(redis_url) == {}


def test_a_sigkilled_worker_is_restarted_and_nothing_is_lost(tmp_path: Path, redis_url: str) -> None:
    records = numbered(N, raw_request="R" * 2000)
    for i in range(4):
        push(redis_url, msgpack_payloads(records[i::4]), BASE_LIST if i == 0 else f"{BASE_LIST}_{i}")
    db = tmp_path / "a.db"
    port = 18000 + os.getpid() % 2000
    config = write_config(
        tmp_path / "pump.conf", redis_url, {"sqlite": {"type": "sql", "meta": {"type": "sqlite", "connection_string": str(db)}}},
        purge_chunk=200, health_check_endpoint_port=port, telemetry={"health_enabled": True},
    )  # fmt: skip
    log = (tmp_path / "pump.log").open("ab")
    sup = subprocess.Popen(pump_cmd("run", "--workers", "2", "--config", str(config)), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_for(lambda: len(children(sup.pid)) == 2, "two workers")
        first = children(sup.pid)
        wait_for(lambda: sum(sqlite_paths(db).values()) > 0, "rows written")
        victim = first[0]
        os.kill(victim, signal.SIGKILL)
        killed_at = sum(sqlite_paths(db).values())
        assert killed_at < N, "the drain was over before the kill: the test proved nothing"
        wait_for(lambda: victim not in children(sup.pid) and len(children(sup.pid)) == 2, "the worker restarted")
        wait_for(lambda: sum(sqlite_paths(db).values()) >= N and not list_lengths(redis_url), "everything delivered")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            metrics = resp.read().decode()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
            assert resp.status == 200
    finally:
        sup.send_signal(signal.SIGTERM)
        code = sup.wait(timeout=60)
    assert code == 0, (tmp_path / "pump.log").read_text()[-3000:]
    assert sqlite_paths(db) == Counter(r.path for r in records)  # once each: the sink is idempotent
    assert list_lengths(redis_url) == {}
    assert "pump_records_claimed_total" in metrics
    print(f"\n[workers sigkill] rows when the worker was killed: {killed_at} of {N}")
