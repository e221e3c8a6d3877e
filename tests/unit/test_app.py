"""The daemon (``pump.app``) in-process on fakeredis: the wiring of the one-way delivery path,
``--once`` from start to exit code, stop requests, crash supervision, readiness and the listener
errors. Real Redis and real signals are exercised by tests/integration/test_daemon.py."""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import fakeredis
import pytest
from prometheus_client import CollectorRegistry

from pump import app
from pump.app import UPTIME_PUMP, Daemon, uptime_kind
from pump.config.load import load
from pump.config.model import Config
from pump.delivery.worker import PumpWorker
from pump.errors import EX_CONFIG, EX_TEMPFAIL
from pump.process import listen_error
from pump.source.redis_list import RedisSource
from tests.helpers import msgpack_payloads, numbered, write_config
from tests.unit.delivery.rig import LIST, fake_redis


@pytest.fixture
async def redis(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[fakeredis.FakeAsyncRedis]:
    """The daemon's Redis, whatever its config says, is this fakeredis."""
    r = await fake_redis()

    async def info(section: str = "") -> dict[str, str]:  # fakeredis has no INFO
        return {"redis_version": "7.2.0 (fakeredis)"}

    monkeypatch.setattr(r, "info", info)
    monkeypatch.setattr(app, "connect", lambda cfg: r)
    yield r
    await r.aclose()


def csv_config(tmp_path: Path, **top: object) -> Config:
    pumps = {"csv": {"type": "csv", "meta": {"csv_dir": str(tmp_path / "csv")}}, "dev-null": {"type": "dummy"}}
    config, _ = load(write_config(tmp_path / "pump.conf", "redis://127.0.0.1:1/0", pumps, **top), {})
    return config


def daemon(config: Config, **kwargs: object) -> Daemon:
    return Daemon(config, registry=CollectorRegistry(), handle_signals=False, serve_health=False, **kwargs)  # type: ignore[arg-type]


async def test_once_drains_the_lists_through_every_pump_and_exits_0(
    tmp_path: Path, redis: fakeredis.FakeAsyncRedis, caplog: pytest.LogCaptureFixture
) -> None:
    await redis.rpush(LIST, *msgpack_payloads(numbered(12)), b"\xc1not-a-record")
    d = daemon(csv_config(tmp_path), once=True)

    with caplog.at_level(logging.INFO, "pump.app"):
        assert await asyncio.wait_for(d.run(), timeout=8) == 0

    rows = [line for f in sorted((tmp_path / "csv").iterdir()) for line in f.read_text().splitlines()[1:]]
    assert len(rows) == 12
    assert d.workers["dev-null"].delivered == 12 and d.workers["csv"].delivered == 12
    [summary] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Shutdown on")]
    assert summary == "Shutdown on drained ◆ 1 batches done ◆ 24 records written ◆ 0 dead-lettered ◆ 1 undecodable ◆ 0 returned to Redis"
    assert await redis.llen(LIST) == 0 and await redis.llen("pump:deadletter:undecodable") == 1
    assert await redis.exists("pump:instance:" + d.config.delivery.instance_id) == 0  # unregistered


async def test_the_delivery_path_is_wired_one_way(tmp_path: Path, redis: fakeredis.FakeAsyncRedis) -> None:
    d = daemon(csv_config(tmp_path))
    d._build(RedisSource(redis, "pump", "test", 60))
    assert d.fanout is not None and d.acks is not None
    assert set(d.workers) == {"csv", "dev-null"} and UPTIME_PUMP not in d.workers  # no uptime sink configured
    assert len(d.fanout.keys) == 22  # Tyk's 11 msgpack lists and their protobuf twins
    for worker in d.workers.values():
        assert isinstance(worker, PumpWorker)
        assert worker.backlog is d.fanout.intake and worker.acks is d.acks  # in through a Backlog, out to the acks
        assert not hasattr(worker, "fanout")
    assert d.fanout.intake.analytics_pumps == frozenset({"csv", "dev-null"})
    assert {k.name for k in d.all_keys()} >= {"pump:backlog:csv", "pump:backlog:dev-null"}


async def test_a_second_stop_request_stops_waiting(tmp_path: Path, redis: fakeredis.FakeAsyncRedis) -> None:
    d = daemon(csv_config(tmp_path))
    run = asyncio.create_task(d.run())
    for _ in range(2000):
        if d.claim_loop is not None:
            break
        await asyncio.sleep(0)
    assert d._alive() is True and d._ready() == (True, {})
    d.request_stop("test")
    assert d._ready() == (False, {"reason": "draining"})
    d.request_stop("again")
    assert await asyncio.wait_for(run, timeout=8) == 1  # forced
    assert d.stop_reason == "test"


async def test_a_stop_during_start_up_claims_nothing(tmp_path: Path, redis: fakeredis.FakeAsyncRedis) -> None:
    d = daemon(csv_config(tmp_path))
    d.request_stop("SIGTERM")
    assert await asyncio.wait_for(d.run(), timeout=8) == 0
    assert d.claim_loop is None and d.workers == {}


async def test_a_crashed_background_task_stops_the_daemon(tmp_path: Path) -> None:
    d = daemon(csv_config(tmp_path))

    async def boom() -> None:
        raise RuntimeError("bug (test)")

    task = d.supervise(asyncio.create_task(boom()))
    await asyncio.wait({task})
    await asyncio.sleep(0)  # done callbacks run on the next turn
    assert d.crashed and d._stop.is_set() and d.stop_reason == "internal error"
    assert d._alive() == "crashed"


async def test_ready_names_the_pumps_failing_for_longer_than_the_threshold(tmp_path: Path, redis: fakeredis.FakeAsyncRedis) -> None:
    d = daemon(csv_config(tmp_path, telemetry={"ready_failing_after": 30}))
    d._build(RedisSource(redis, "pump", "test", 60))
    d.claim_loop = asyncio.create_task(asyncio.Event().wait())
    try:
        worker = d.workers["csv"]
        worker.last_error = "disk full (test)"
        worker.failing_since = worker.clock.now() - 10
        assert d._ready() == (True, {})  # failing, but not for long
        worker.failing_since = worker.clock.now() - 31
        assert d._ready() == (False, {"reason": "pumps failing", "pumps": {"csv": "disk full (test)"}})
    finally:
        d.claim_loop.cancel()


def test_uptime_is_drained_only_to_a_configured_sink() -> None:
    assert uptime_kind(Config()) is None
    assert uptime_kind(Config.model_validate({"uptime_pump_config": {"mongo_url": "mongodb://h/db"}})) == "mongo"
    assert uptime_kind(Config.model_validate({"uptime_pump_config": {"uptime_type": "mongo"}})) is None  # no URL
    sql = {"uptime_pump_config": {"uptime_type": "sql", "type": "sqlite", "connection_string": "/tmp/u.db"}}
    assert uptime_kind(Config.model_validate(sql)) == "sql"
    assert uptime_kind(Config.model_validate({**sql, "dont_purge_uptime_data": True})) is None


def test_listener_errors_say_what_to_change() -> None:
    busy = listen_error(OSError(errno.EADDRINUSE, "Address already in use"), "/health", "0.0.0.0:8083", "health_check_endpoint_port")
    assert busy.exit_code == EX_TEMPFAIL
    assert str(busy) == (
        "cannot serve /health on 0.0.0.0:8083: the address is already in use (is another pump running?); "
        "stop it or set health_check_endpoint_port to a free port"
    )
    denied = listen_error(OSError(errno.EACCES, "Permission denied"), "/metrics", "0.0.0.0:80", "telemetry.metrics_address")
    assert denied.exit_code == EX_CONFIG
    assert str(denied) == "cannot serve /metrics on 0.0.0.0:80: Permission denied; fix telemetry.metrics_address"
