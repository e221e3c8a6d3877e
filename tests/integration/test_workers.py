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


def alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_a_sigkilled_supervisor_takes_its_workers_down_at_once_and_a_new_pump_delivers_everything_once(
    tmp_path: Path, redis_url: str
) -> None:
    """SIGKILL of the pid a user (or a test) knows is a crash of the processes that write: the
    workers are SIGKILLed with it (no graceful shutdown, no claimer left behind), and the next pump
    takes their leased claims back."""
    records = numbered(N, raw_request="R" * 2000)
    for i in range(4):
        push(redis_url, msgpack_payloads(records[i::4]), BASE_LIST if i == 0 else f"{BASE_LIST}_{i}")
    db = tmp_path / "a.db"
    pumps = {"sqlite": {"type": "sql", "meta": {"type": "sqlite", "connection_string": str(db)}}}
    config = write_config(tmp_path / "pump.conf", redis_url, pumps, purge_chunk=200)
    log_path = tmp_path / "pump.log"
    with log_path.open("ab") as log:
        sup = subprocess.Popen(pump_cmd("run", "--workers", "2", "--config", str(config)), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
    wait_for(lambda: len(children(sup.pid)) == 2, "two workers")
    workers = children(sup.pid)
    wait_for(lambda: sum(sqlite_paths(db).values()) > 0, "rows written")
    logged_before_kill = log_path.stat().st_size
    sup.send_signal(signal.SIGKILL)
    sup.wait(timeout=30)
    wait_for(lambda: not any(alive(pid) for pid in workers), "the workers died with their supervisor", seconds=30)
    killed_at = sum(sqlite_paths(db).values())
    assert killed_at < N, "the drain was over before the kill: the test proved nothing"
    after_kill = log_path.read_bytes()[logged_before_kill:].decode(errors="replace")
    assert "Shutdown on" not in after_kill, f"the workers shut down gracefully instead of crashing:\n{after_kill[-2000:]}"
    proc = run_pump("run", "--once", "--workers", "2", "--config", str(config))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sqlite_paths(db) == Counter(r.path for r in records)  # once each: the sink is idempotent
    assert list_lengths(redis_url) == {}
    print(f"\n[supervisor sigkill] rows when the supervisor was killed: {killed_at} of {N}")


def test_without_workers_the_pump_runs_one_worker_per_usable_cpu(tmp_path: Path, redis_url: str) -> None:
    """The default (``workers: auto``) with the suite's pin (TYK_PMP_WORKERS, tests/conftest.py)
    lifted: as many workers as the CPUs this process may use; one usable CPU runs no supervisor."""
    from pump.cpus import usable_cpus

    push(redis_url, msgpack_payloads(numbered(2000)), BASE_LIST)
    out = tmp_path / "csv"
    config = write_config(tmp_path / "pump.conf", redis_url, {"csv": {"type": "csv", "meta": {"csv_dir": str(out)}}})
    env = {k: v for k, v in os.environ.items() if k != "TYK_PMP_WORKERS"}
    proc = subprocess.run(
        pump_cmd("run", "--once", "--config", str(config)), cwd=ROOT, capture_output=True, text=True, timeout=300, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    cpus = usable_cpus()
    assert proc.stderr.count("Worker started.") == (cpus if cpus > 1 else 0)
    assert len(csv_rows(out)) == 2000 and list_lengths(redis_url) == {}
    pinned = run_pump("run", "--once", "--config", str(config), env={"TYK_PMP_WORKERS": "1"})
    assert pinned.returncode == 0 and "Worker started." not in pinned.stderr
