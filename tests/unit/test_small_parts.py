"""Backoff, health endpoint routing, and Redis key naming for Cluster."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry

from pump.config.model import Delivery
from pump.delivery.retry import RetryState, backoff
from pump.source.redis_list import SourceKey, gateway_lists, hash_tag
from pump.telemetry.health import HealthServer, Probe


def test_backoff_is_full_jitter_and_capped() -> None:
    rng = random.Random(1)
    waits = [backoff(n, 0.5, 30, rng) for n in range(1, 60) for _ in range(20)]
    assert all(0 <= w <= 30 for w in waits)
    assert max(backoff(1, 0.5, 30, rng) for _ in range(200)) <= 0.5
    assert max(waits) > 20  # it does grow to the cap


def test_retry_state_limits() -> None:
    unlimited = RetryState(Delivery())
    for _ in range(1000):
        unlimited.failed("down")
    assert not unlimited.exhausted()
    limited = RetryState(Delivery(max_attempts=3))
    for _ in range(3):
        limited.failed("down")
    assert limited.exhausted() and limited.give_up_reason() == "gave up after 3 attempt(s): down"


def test_health_routes() -> None:
    state = {"alive": True, "ready": (True, {})}
    srv = HealthServer(Probe(lambda: state["alive"], lambda: state["ready"]), CollectorRegistry(), "hello")
    assert srv.respond("GET", "/hello") == (200, "application/json", b'{"status": "ok"}')
    state["alive"] = False
    assert srv.respond("GET", "/hello")[0] == 503
    assert srv.respond("GET", "/ready")[0] == 200
    state["ready"] = (False, {"reason": "draining"})
    code, _, body = srv.respond("GET", "/ready")
    assert code == 503 and b"draining" in body
    assert srv.respond("POST", "/hello")[0] == 405
    assert srv.respond("GET", "/nope")[0] == 404
    assert srv.respond("GET", "/metrics")[0] == 200


def test_gateway_lists_are_tyks_22_in_order() -> None:
    lists = gateway_lists("analytics-")
    assert len(lists) == 22
    assert lists[:3] == [
        ("analytics-tyk-system-analytics", "msgpack"),
        ("analytics-tyk-system-analytics_protobuf", "protobuf"),
        ("analytics-tyk-system-analytics_0", "msgpack"),
    ]
    assert lists[-1] == ("analytics-tyk-system-analytics_9_protobuf", "protobuf")


def test_helper_keys_share_the_lists_cluster_slot() -> None:
    from redis.crc import key_slot

    for name in ("analytics-tyk-system-analytics_3", "pump:backlog:csv", "{tag}-list"):
        key = SourceKey(name, "msgpack", "pump")
        for helper in (key.leases, key.marks, key.batches, key.proc("t"), key.done("b")):
            assert key_slot(helper.encode()) == key_slot(name.encode()), helper
    assert hash_tag("{tag}-list") == "{tag}-list"
