"""Issue #9, items 7, 8, 9 and 12: the daemon survives what operators and outages do to it, and
stops when told to, whatever state it is in. Real redis-server (private instances where a test
kills one), the real CLI in a subprocess, real signals. Waits are bounded polls, never sleeps
that a slow machine could turn into a failure."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as sync_redis
from prometheus_client import CollectorRegistry

from pump.app import Daemon
from pump.config.load import load
from pump.config.model import StorageConfig
from pump.source.connect import connect
from pump.source.redis_list import RedisSource, SourceKey
from tests import servers
from tests.helpers import BASE_LIST, ROOT, client, list_lengths, msgpack_payloads, numbered, pump_cmd, pump_keys, push, write_config
from tests.integration.test_daemon import free_port, get
from tests.integration.test_reliability import paths_in, start_daemon, wait_for

pytestmark = pytest.mark.integration


def log_lines(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines() if path.exists() else []


def claimed_keys(url: str) -> list[str]:
    return [k for k in pump_keys(url) if ":p:" in k or k.endswith(":leases")]


# ------------------------------------------------------------------------- item 8: stop, always


def test_sigterm_while_redis_is_unreachable_at_start_up(tmp_path: Path) -> None:
    """Redis never answers (a closed port). /health is not 200 — the loop has never run — and
    SIGTERM ends the wait at once with a clear line and exit 0; nothing was claimed."""
    redis_port, health = servers.free_port(), free_port()
    log = tmp_path / "pump.log"
    config = write_config(
        tmp_path / "pump.conf", f"redis://127.0.0.1:{redis_port}/0", {"csv": {"type": "csv", "meta": {"csv_dir": str(tmp_path / "csv")}}},
        health_check_endpoint_port=health, telemetry={"health_enabled": True, "health_bind": "127.0.0.1"},
    )  # fmt: skip
    proc = start_daemon(config, log)
    try:
        wait_for(lambda: any("Redis unavailable; retrying." in line for line in log_lines(log)), 30, "a failed Redis attempt", proc)
        assert get(f"http://127.0.0.1:{health}/health") == (503, '{"status":"starting"}')
        code, body = get(f"http://127.0.0.1:{health}/ready")
        assert code == 503 and json.loads(body)["reason"] == "redis unavailable"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    last = log_lines(log)[-1]
    assert last.split(" ", 1)[1].startswith(
        "INFO    pump.app: Stopped on SIGTERM while waiting for Redis; nothing was claimed."
        f'  redis=redis://127.0.0.1:{redis_port}/0 error="Error 111 connecting to 127.0.0.1:{redis_port}.'
    ), last


@contextlib.contextmanager
def hung_stdout_pump(tmp_path: Path, redis_url: str, shutdown_timeout: float) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """A pump whose only sink writes to a pipe nobody reads: its write blocks in a thread for
    good, as a write to a hung NFS mount or a stuck socket would. Killed at the end if alive."""
    push(redis_url, msgpack_payloads(numbered(3000)))
    config = write_config(
        tmp_path / "pump.conf", redis_url, {"out": {"type": "stdout", "meta": {"format": "text"}}},
        purge_chunk=1000, telemetry={"shutdown_timeout": shutdown_timeout},
        delivery={"max_memory": "192MiB"},  # a first claim of 768 records: more text than a pipe buffer holds
    )  # fmt: skip
    log = tmp_path / "pump.log"
    proc = subprocess.Popen(pump_cmd("run", "--config", str(config)), cwd=ROOT, stdout=subprocess.PIPE, stderr=log.open("ab"))
    try:
        wait_for(lambda: list_lengths(redis_url) == {}, 60, "every record to be claimed", proc)
        yield proc, log
    finally:
        if proc.poll() is None:
            proc.kill()


def test_sigterm_with_a_write_that_never_returns_exits_after_the_shutdown_timeout(tmp_path: Path, redis_url: str) -> None:
    with hung_stdout_pump(tmp_path, redis_url, shutdown_timeout=1) as (proc, log):
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, "the process ends although a thread is stuck in a write"
    text = log.read_text()
    assert "Shutdown on SIGTERM ◆ 0 batches done ◆ 0 records written ◆ 0 dead-lettered ◆ 0 undecodable ◆ 3000 returned to Redis" in text
    assert "Exiting without waiting for blocked I/O threads" in text
    assert sum(list_lengths(redis_url).values()) == 3000 and claimed_keys(redis_url) == []


def test_a_second_signal_while_draining_stops_at_once(tmp_path: Path, redis_url: str) -> None:
    with hung_stdout_pump(tmp_path, redis_url, shutdown_timeout=600) as (proc, log):
        proc.send_signal(signal.SIGTERM)
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=2)  # draining: it waits (up to 600 s) for the write in hand
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 1, "a forced stop exits 1"
    text = log.read_text()
    assert "Second stop request: not waiting for in-flight writes." in text
    assert "Shutdown on SIGTERM (forced) ◆ 0 batches done" in text and "◆ 3000 returned to Redis" in text
    assert sum(list_lengths(redis_url).values()) == 3000 and claimed_keys(redis_url) == []


def test_sigterm_while_redis_is_down_mid_run_is_prompt(tmp_path: Path) -> None:
    """Redis dies under a running pump: the claim loop waits for it — and gives up at once when
    told to stop, instead of sitting out its backoff and a 30 s grace."""
    srv = servers.start("redis", tmp_path / "redis")
    out, log = tmp_path / "csv", tmp_path / "pump.log"
    try:
        push(srv.url, msgpack_payloads(numbered(100)))
        config = write_config(tmp_path / "pump.conf", srv.url, {"csv": {"type": "csv", "meta": {"csv_dir": str(out)}}})
        proc = start_daemon(config, log)
        try:
            wait_for(lambda: len(paths_in(out)) == 100, 60, "delivery", proc)
            srv.stop()
            wait_for(lambda: any("operation=claim" in line for line in log_lines(log)), 30, "the claim loop to wait for Redis", proc)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    finally:
        srv.stop()
    assert "Shutdown on SIGTERM ◆ 1 batches done ◆ 100 records written" in log.read_text()


# ------------------------------------------------------------- item 9: liveness is not Redis


async def test_a_long_redis_outage_leaves_health_200_and_ready_503(tmp_path: Path) -> None:
    """The daemon in-process with its own Redis, which is then killed. The claim loop waits for
    Redis, so it does not tick: an hour of that is simulated by moving its last tick back an
    hour (no sleeping 60 s). Liveness stays 200; readiness says Redis is down."""
    srv = servers.start("redis", tmp_path / "redis")
    port = free_port()
    config_path = write_config(
        tmp_path / "pump.conf", srv.url, {"csv": {"type": "csv", "meta": {"csv_dir": str(tmp_path / "csv")}}},
        health_check_endpoint_port=port, telemetry={"health_enabled": True, "health_bind": "127.0.0.1"},
    )  # fmt: skip
    config, _ = load(config_path, {})
    daemon = Daemon(config, registry=CollectorRegistry(), handle_signals=False)
    run = asyncio.create_task(daemon.run())

    async def probe(path: str) -> tuple[int, str]:
        return await asyncio.to_thread(get, f"http://127.0.0.1:{port}{path}")

    async def until(path: str, code: int, what: str) -> None:
        for _ in range(300):  # 30 s at most
            if (await probe(path))[0] == code:
                return
            assert not run.done(), f"the daemon stopped while waiting for {what}"
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")

    try:
        await until("/ready", 200, "the pump to be ready")
        srv.stop()
        await until("/ready", 503, "/ready to report Redis down")
        detail = json.loads((await probe("/ready"))[1])
        assert detail["reason"] == "redis unavailable" and detail["redis"] == f"redis://127.0.0.1:{srv.port}/0"
        assert daemon.fanout is not None
        daemon.fanout.last_tick -= 3600  # as if the loop had been waiting for Redis for an hour
        assert await probe("/health") == (200, '{"status": "ok"}')
    finally:
        daemon.request_stop("test")
        assert await asyncio.wait_for(run, timeout=30) == 0
        srv.stop()


# ------------------------------------------------------------------ item 12: no leaked pipeline


async def test_a_claim_that_fails_when_redis_dies_leaves_no_unclosed_pipeline(tmp_path: Path) -> None:
    """Redis is killed while a claim waits for its reply (clients paused, then SIGKILL): the
    claim fails, and its pipeline is reset rather than dropped holding its connection — which
    asyncio reported as ``ERROR asyncio: Unclosed Pipeline client``."""
    srv = servers.start("redis", tmp_path / "redis")
    reports: list[str] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: reports.append(str(ctx.get("message"))))
    redis = connect(StorageConfig(host="127.0.0.1", port=srv.port or 6379))
    source = RedisSource(redis, "pump", "me", 60)
    key = SourceKey(BASE_LIST, "msgpack", "pump")
    try:
        client(srv.url).rpush(BASE_LIST, b"a", b"b")
        assert await source.claim(key, 1) is not None  # the connection is pooled and the script known
        sync_redis.Redis.from_url(srv.url).execute_command("CLIENT", "PAUSE", "20000", "ALL")
        claim = asyncio.create_task(source.claim(key, 1))
        await asyncio.sleep(0.3)  # let it send and wait for the reply
        assert srv.pid is not None
        os.kill(srv.pid, signal.SIGKILL)
        with pytest.raises(sync_redis.exceptions.ConnectionError):
            await claim
        del claim
        gc.collect()
        await asyncio.sleep(0)
        assert reports == []
    finally:
        asyncio.get_running_loop().set_exception_handler(None)
        srv.stop()
        await redis.aclose()


# ------------------------------------------------------ item 7: thousands of attempts survived


def test_a_pump_down_for_thousands_of_attempts_survives_and_delivers_everything(tmp_path: Path, redis_url: str) -> None:
    """Backoff of 1 ms so that thousands of attempts take seconds: the pump used to die at
    attempt 1,025 (OverflowError in the backoff). A CSV directory that cannot be used stands for
    the sink being down — first at start (the sink cannot even start), then while writing."""
    out, log = tmp_path / "csv", tmp_path / "pump.log"
    out.write_text("a file where the directory should be")
    config = write_config(
        tmp_path / "pump.conf", redis_url, {"csv": {"type": "csv", "meta": {"csv_dir": str(out)}}},
        log_level="debug", delivery={"backoff_initial": 0.001, "backoff_max": 0.001},
    )  # fmt: skip
    first, second = numbered(500), numbered(20, api_id="second-wave")  # small: each attempt formats the batch
    for r in second:
        r.path = r.path.replace("/items/", "/second/")
    push(redis_url, msgpack_payloads(first))
    proc = start_daemon(config, log)

    def attempts() -> int:
        return sum("Pump still failing." in line for line in log_lines(log))

    try:
        wait_for(lambda: attempts() >= 2500, 300, "2,500 attempts to start the sink", proc)
        out.unlink()  # the sink comes back
        wait_for(lambda: len(paths_in(out)) == 500, 60, "the first wave", proc)
        before = attempts()

        aside = tmp_path / "csv-aside"
        out.rename(aside)
        out.write_text("gone again")  # now writes fail
        push(redis_url, msgpack_payloads(second))
        wait_for(lambda: attempts() >= before + 2500, 300, "2,500 attempts to write", proc)
        out.unlink()
        aside.rename(out)
        wait_for(lambda: len(paths_in(out)) == 520, 60, "the second wave", proc)
        assert proc.poll() is None, "the daemon never died"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    written = paths_in(out)
    assert written.keys() == {r.path for r in first + second} and set(written.values()) == {1}
    assert list_lengths(redis_url) == {} and pump_keys(redis_url) == []
    text = log.read_text()
    assert "crashed" not in text and "OverflowError" not in text
