"""Issue #9, item 7: a backoff that cannot overflow, and Redis waits that survive any outage.
Pure or in-process: no server, no sleeping."""

from __future__ import annotations

import logging
import random

import pytest
from prometheus_client import CollectorRegistry
from redis.exceptions import ConnectionError as RedisConnectionError

from pump.config.model import Delivery
from pump.delivery.ack import until_ok
from pump.delivery.retry import RetryState, backoff, backoff_bound
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
    assert metrics.redis_up._value.get() == 1  # type: ignore[attr-defined]
    logged = [r for r in caplog.records if r.getMessage() == "Redis unavailable; retrying."]
    assert 0 < len(logged) <= failures // 20 + 2, "retries are logged sparsely, not once per attempt"
