"""Driver of ``scripts/demo``: Redis up, traffic in, ``pump run --once``, a summary a person reads."""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "demo-output"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    for _ in range(100):
        try:
            redis.Redis(port=port).ping()
            return proc, port
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("redis-server did not start")


def pump(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pump", *args], cwd=ROOT, text=True, capture_output=True)


class Progress:
    """One progress line for a step people wait on: done/total, records/s and ETA.

    On a terminal the line is rewritten in place; in a log (CI, a pipe) it is printed at most
    every 2 s, so a long demo still says it is alive without flooding the log.
    """

    def __init__(self, what: str, total: int) -> None:
        self.what, self.total = what, max(total, 1)
        self.started = time.perf_counter()
        self.tty = sys.stdout.isatty()
        self.last_print = 0.0

    def update(self, done: int) -> None:
        now = time.perf_counter()
        if not self.tty and now - self.last_print < 2.0:
            return
        self.last_print = now
        elapsed = max(now - self.started, 1e-6)
        rate = done / elapsed
        eta = f"ETA {(self.total - done) / rate:.0f} s" if rate > 0 and done < self.total else ""
        line = f"   {self.what}: {done:,}/{self.total:,} ({100 * done / self.total:.0f} %, {rate:,.0f} records/s) {eta}"
        print(f"\r{line:<90}" if self.tty else line, end="" if self.tty else "\n", flush=True)

    def finish(self) -> float:
        elapsed = time.perf_counter() - self.started
        if self.tty:
            print("\r" + " " * 90 + "\r", end="", flush=True)
        return elapsed


def pending(client: redis.Redis) -> int:
    """Records waiting on the gateway lists (every analytics list, msgpack and protobuf)."""
    pipe = client.pipeline(transaction=False)
    for key in client.scan_iter(match="analytics-tyk-system-analytics*", count=100):
        pipe.llen(key)
    return sum(int(n) for n in pipe.execute())


def watch(args: list[str], progress: Progress, done: Callable[[], int]) -> subprocess.CompletedProcess[str]:
    """Run ``pump ARGS`` in the background, updating ``progress`` from ``done()`` until it exits."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-m", "pump", *args], cwd=ROOT, text=True, stdout=out, stderr=err)
        while proc.poll() is None:
            with contextlib.suppress(Exception):  # a progress line is best effort
                progress.update(done())
            time.sleep(0.25)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out.read(), err.read())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=20000)
    args = ap.parse_args()
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir()
    work = Path(tempfile.mkdtemp(prefix="pump-demo-"))
    redis_proc = None
    url = os.environ.get("PUMP_DEMO_REDIS_URL", "")
    try:
        if url:
            from urllib.parse import urlparse

            u = urlparse(url)
            host, port, db = u.hostname or "127.0.0.1", u.port or 6379, int((u.path or "/0").strip("/") or 0)
        else:
            redis_proc, port = start_redis(work)
            host, db = "127.0.0.1", 0
        sql = importlib.util.find_spec("pump.sinks.sql") is not None
        pumps: dict[str, object] = {"csv": {"type": "csv", "meta": {"csv_dir": str(OUT / "csv")}}}
        if sql:
            db_path = str(OUT / "analytics.db")
            pumps["sqlite"] = {"type": "sql", "meta": {"type": "sqlite", "connection_string": db_path}}
            pumps["sqlite_aggregate"] = {
                "type": "sql_aggregate",
                "meta": {"type": "sqlite", "connection_string": db_path, "track_all_paths": True},
            }
        config = {
            "analytics_storage_config": {"host": host, "port": port, "database": db},
            "purge_delay": 1,
            "dont_purge_uptime_data": True,
            "telemetry": {"health_enabled": False},
            "pumps": pumps,
        }
        cfg_path = OUT / "pump.conf"
        cfg_path.write_text(json.dumps(config, indent=2))
        print(f"1. Redis on {host}:{port}; pump file {cfg_path.relative_to(ROOT)}")
        import redis

        client = redis.Redis(host=host, port=port, db=db)
        before = pending(client)
        pushing = Progress("pushing", args.records)
        demo = watch(["demo", "--config", str(cfg_path), "--records", str(args.records)], pushing, lambda: pending(client) - before)
        if demo.returncode:
            raise SystemExit(demo.stderr)
        pushed_in = pushing.finish()
        print(f"2. Pushed {args.records} Tyk-format records (msgpack and protobuf, as gateways do) onto the lists in {pushed_in:.1f} s")
        total = pending(client)
        draining = Progress("draining", total)
        run = watch(["run", "--once", "--config", str(cfg_path)], draining, lambda: total - pending(client))
        elapsed = draining.finish()
        (OUT / "pump.log").write_text(run.stderr)
        if run.returncode:
            print(run.stderr[-3000:])
            raise SystemExit(f"pump run --once exited {run.returncode}")
        print(f"3. pump run --once drained them in {elapsed:.1f} s ({total / max(elapsed, 1e-6):,.0f} records/s) into {', '.join(pumps)}")
        summary(OUT, sql)
        print(f"\nEverything is in {OUT.relative_to(ROOT)}/ (pump.conf, pump.log, csv/{', analytics.db' if sql else ''}).")
        print("Run the tests with: scripts/test")
        return 0
    finally:
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait()
        shutil.rmtree(work, ignore_errors=True)


def summary(out: Path, sql: bool) -> None:
    rows = 0
    codes: dict[str, int] = {}
    for path in sorted((out / "csv").glob("*.csv")):
        with path.open(newline="") as fh:
            reader = csv.reader(fh)
            next(reader)
            for row in reader:
                rows += 1
                codes[row[10]] = codes.get(row[10], 0) + 1
    files = len(list((out / "csv").glob("*.csv")))
    print(f"\nCSV: {rows} rows in {files} hourly file(s), Tyk's 42 columns")
    top = sorted(codes.items(), key=lambda kv: -kv[1])[:6]
    print("   status codes: " + ", ".join(f"{c}×{n}" for c, n in top))
    if sql:
        from pump.sinks.sql_report import summary as sql_summary

        print()
        print(sql_summary(str(out / "analytics.db")))
        print("   (GraphQL and network-only records are not aggregated, as in Tyk)")


if __name__ == "__main__":
    raise SystemExit(main())
