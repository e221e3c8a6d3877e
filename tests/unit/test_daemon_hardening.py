"""Issue #9, items 7-9: backoff that cannot overflow, Redis waits that survive any outage and give
up when the pump stops, and probes that mean what they say (liveness is the loop, readiness
includes Redis). Pure or in-process: no server, no sleeping."""

from __future__ import annotations

import asyncio
import logging
import random
import time

import pytest
from prometheus_client import CollectorRegistry
from redis.exceptions import ConnectionError as RedisConnectionError

from pump.app import Daemon
from pump.config.model import Config, Delivery
from pump.delivery.ack import RedisWaitAbandoned, until_ok
from pump.delivery.retry import RetryState, backoff, backoff_bound
from pump.telemetry.health import HealthServer, Probe
from pump.telemetry.metrics import Metrics


@pytest.mark.parametrize("attempt", [1024, 1025, 1026, 5000, 10**6, 10**7, 2**62])
def test_backoff_bound_reaches_the_cap_and_never_overflows(attempt: int) -> None:
    assert backoff_bound(attempt, 0.5, 30) == 30
    assert backoff_bound(attempt, 0.001, 0.002) == 0.002
    assert 0 <= backoff(attempt, 0.5, 30, random.Random(attempt)) <= 30


def test_backoff_bound_doubles_until_the_cap() -> None:
    assert [backoff_bound(n, 0.5, 30) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert backoff_bound(0, 0.5, 30) == 0.5 and backoff_bound(-3, 0.5, 30) == 0.5
    assert backoff_bound(2000, 1e-6, 1e9) == 1e9, "a tiny initial wait still grows to a huge cap"


def test_a_retry_state_after_a_million_failures_still_gives_a_delay() -> None:
    state = RetryState(Delivery(backoff_initial=0.5, backoff_max=30))
    state.attempts = 10**6
    state.failed("down")
    assert 0 <= state.delay() <= 30 and not state.exhausted()


async def test_until_ok_outlasts_thousands_of_redis_failures(caplog: pytest.LogCaptureFixture) -> None:
    """The Redis wait used to die with OverflowError at attempt 1,025."""
    failures = 3000
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls <= failures:
            raise RedisConnectionError("Connection refused (test)")
        return "pong"

    metrics = Metrics(CollectorRegistry())
    with caplog.at_level(logging.WARNING, "pump.delivery.ack"):
        assert await until_ok(flaky, "ping", metrics, max_wait=0.0001) == "pong"
    assert calls == failures + 1
    assert metrics.redis_down_since is None and metrics.redis_up._value.get() == 1  # type: ignore[attr-defined]
    logged = [r for r in caplog.records if r.getMessage() == "Redis unavailable; retrying."]
    assert 0 < len(logged) <= failures // 20 + 2, "retries are logged sparsely, not once per attempt"


@pytest.mark.parametrize(
    "reply",
    ["CLUSTERDOWN The cluster is down", "TRYAGAIN Multiple keys request during rehashing of slot", "MASTERDOWN Link with MASTER is down"],
)
async def test_until_ok_waits_out_a_cluster_failing_over(reply: str) -> None:
    """A Redis Cluster answers CLUSTERDOWN while a replica takes over a killed master's slots; the
    acknowledgement path once took it for an internal error and stopped the pump mid-drain."""
    from redis._parsers.base import BaseParser

    calls = 0

    async def failing_over() -> str:
        nonlocal calls
        calls += 1
        if calls <= 3:
            raise BaseParser.EXCEPTION_CLASSES[reply.split()[0]](reply)  # how redis-py maps the reply
        return "OK"

    assert await until_ok(failing_over, "mark_done", max_wait=0.0001) == "OK"
    assert calls == 4


async def test_until_ok_takes_redis_pys_writer_close_race_for_a_lost_connection() -> None:
    """redis-py 8.1 lets AttributeError escape when a connection is closed mid-write (a Cluster
    client drops a failed node's connections while other tasks write on them); that stopped a pump
    during a master failover. It is retried like ConnectionError; our own AttributeErrors are not."""
    from redis.asyncio.connection import Connection

    calls = 0

    async def racing() -> str:
        nonlocal calls
        calls += 1
        if calls <= 2:
            conn = Connection()
            conn._writer = None  # what a concurrent disconnect leaves behind
            await conn._send_packed_command([b"PING"])
        return "PONG"

    assert await until_ok(racing, "mark_done", max_wait=0.0001) == "PONG"
    assert calls == 3

    async def ours() -> str:
        return None.upper()  # type: ignore[attr-defined]

    with pytest.raises(AttributeError):
        await until_ok(ours, "claim", max_wait=0.0001)


async def test_until_ok_gives_up_as_soon_as_the_pump_stops() -> None:
    stop = asyncio.Event()
    calls = 0

    async def down() -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            stop.set()
        raise RedisConnectionError("Connection refused (test)")

    started = time.monotonic()
    with pytest.raises(RedisWaitAbandoned, match="claim: stopped while Redis was unavailable"):
        await until_ok(down, "claim", max_wait=3600, stop=stop)
    assert calls == 3
    assert time.monotonic() - started < 60, "it did not sit out an hour-long backoff"


def probes(daemon: Daemon) -> HealthServer:
    return HealthServer(Probe(daemon._alive, daemon._ready), daemon.metrics.registry, "health")


async def test_health_is_not_ok_before_the_claim_loop_runs() -> None:
    daemon = Daemon(Config(), registry=CollectorRegistry(), handle_signals=False, serve_health=False)
    srv = probes(daemon)
    assert srv.respond("GET", "/health") == (503, "application/json", b'{"status":"starting"}')
    code, _, body = srv.respond("GET", "/ready")
    assert code == 503 and b'"reason":"starting"' in body


async def test_liveness_survives_a_long_redis_outage_and_readiness_reports_it() -> None:
    """An hour without Redis, observed through the probes without waiting an hour: the loop is
    alive (200) — restarting would not bring Redis back — and /ready says why it is not ready."""
    daemon = Daemon(Config(), registry=CollectorRegistry(), handle_signals=False, serve_health=False)
    srv = probes(daemon)
    daemon.claim_loop = asyncio.create_task(asyncio.Event().wait(), name="claim-loop")  # running, waiting for Redis
    try:
        assert srv.respond("GET", "/health")[0] == 200 and srv.respond("GET", "/ready")[0] == 200
        daemon.metrics.redis_failed("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        daemon.metrics.redis_down_since = time.monotonic() - 3600
        assert srv.respond("GET", "/health") == (200, "application/json", b'{"status": "ok"}')
        code, _, body = srv.respond("GET", "/ready")
        assert code == 503 and b'"reason":"redis unavailable"' in body and b"Connection refused" in body
        assert b'"down_for_s":3600' in body
        daemon.metrics.redis_ok()
        assert srv.respond("GET", "/ready")[0] == 200
        daemon.crashed = True
        assert srv.respond("GET", "/health") == (503, "application/json", b'{"status":"crashed"}')
    finally:
        daemon.claim_loop.cancel()
