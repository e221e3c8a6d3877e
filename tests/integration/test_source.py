"""The claim/acknowledge protocol on a real Redis: atomic claims, acks, returning batches in
order under their own id, lease expiry, idempotent retries, and instance takeover."""

from __future__ import annotations

import os

import pytest
import redis.asyncio as aioredis

from pump.source.redis_list import RedisSource, SourceKey, backlog_key
from tests.helpers import BASE_LIST, client

pytestmark = pytest.mark.integration


@pytest.fixture
async def src(redis_url: str):  # type: ignore[no-untyped-def]
    r = aioredis.Redis.from_url(redis_url)
    yield RedisSource(r, "pump", "test-instance", lease_seconds=30)
    await r.aclose()


KEY = SourceKey(BASE_LIST, "msgpack", "pump")


def fill(url: str, n: int, key: str = BASE_LIST) -> list[bytes]:
    items = [f"rec-{i}".encode() for i in range(n)]
    client(url).rpush(key, *items)
    return items


async def test_claim_moves_a_bounded_batch_and_ack_deletes_it(src: RedisSource, redis_url: str) -> None:
    items = fill(redis_url, 12)
    r = client(redis_url)
    claim = await src.claim(KEY, 5)
    assert claim is not None and claim.raws == items[:5]
    assert r.lrange(BASE_LIST, 0, -1) == items[5:]
    assert r.lrange(KEY.proc(claim.token), 0, -1) == items[:5]
    assert r.zscore(KEY.leases, claim.member) is not None
    await src.ack(claim)
    assert not r.exists(KEY.proc(claim.token)) and r.zcard(KEY.leases) == 0 and r.hlen(KEY.batches) == 0


async def test_claim_on_an_empty_list_claims_nothing(src: RedisSource, redis_url: str) -> None:
    assert await src.claim(KEY, 5) is None
    assert client(redis_url).zcard(KEY.leases) == 0


async def test_repeating_a_claim_with_its_token_returns_the_same_batch(src: RedisSource, redis_url: str) -> None:
    """A retried claim (reply lost) must not claim a second batch."""
    items = fill(redis_url, 10)
    first = await src.claim(KEY, 4, token="tok1")
    again = await src.claim(KEY, 4, token="tok1")
    assert first is not None and again is not None
    assert again.raws == first.raws == items[:4] and again.batch_id == first.batch_id
    assert client(redis_url).llen(BASE_LIST) == 6


async def test_returned_batch_goes_to_the_head_in_order_and_keeps_its_id_and_progress(src: RedisSource, redis_url: str) -> None:
    items = fill(redis_url, 10)
    first = await src.claim(KEY, 4)
    assert first is not None
    await src.mark_done(first, "csv")
    await src.release(first)
    r = client(redis_url)
    assert r.lrange(BASE_LIST, 0, -1) == items  # back at the head, original order
    again = await src.claim(KEY, 100)
    assert again is not None
    assert again.raws == items[:4], "the returned chunk comes out as the same batch"
    assert again.batch_id == first.batch_id and again.done == {"csv"}
    rest = await src.claim(KEY, 100)
    assert rest is not None and rest.raws == items[4:] and rest.batch_id != first.batch_id


async def test_markers_are_dropped_when_someone_else_changed_the_list_head(src: RedisSource, redis_url: str) -> None:
    items = fill(redis_url, 6)
    first = await src.claim(KEY, 3)
    assert first is not None
    await src.release(first)
    client(redis_url).lpop(BASE_LIST)  # e.g. a Tyk Pump sharing the list took one record
    again = await src.claim(KEY, 100)
    assert again is not None and again.raws == items[1:] and again.batch_id != first.batch_id


async def test_expired_lease_of_a_dead_instance_is_returned_live_ones_are_not(redis_url: str) -> None:
    items = fill(redis_url, 6)
    r = aioredis.Redis.from_url(redis_url)
    dead = RedisSource(r, "pump", "dead-one", lease_seconds=2)
    live = RedisSource(r, "pump", "live-one", lease_seconds=30)
    reaper = RedisSource(r, "pump", "reaper", lease_seconds=30)
    a = await dead.claim(KEY, 3)
    b = await live.claim(KEY, 3)
    assert a is not None and b is not None
    client(redis_url).zadd(KEY.leases, {a.member: 1})  # the dead instance's lease ran out
    assert await reaper.reap([KEY]) == 3
    assert client(redis_url).lrange(BASE_LIST, 0, -1) == items[:3]
    assert client(redis_url).exists(KEY.proc(b.token))
    await r.aclose()


async def test_restarted_instance_returns_what_its_previous_run_left(redis_url: str) -> None:
    items = fill(redis_url, 8)
    r = aioredis.Redis.from_url(redis_url)
    before = RedisSource(r, "pump", "same-id", lease_seconds=600)
    assert await before.claim(KEY, 5) is not None
    after = RedisSource(r, "pump", "same-id", lease_seconds=600)
    assert await after.adopt_own([KEY]) == 5
    assert client(redis_url).lrange(BASE_LIST, 0, -1) == items
    await r.aclose()


async def test_instance_id_in_use_by_a_live_process_is_refused(redis_url: str) -> None:
    import json
    import socket

    r = aioredis.Redis.from_url(redis_url)
    other = json.dumps({"host": socket.gethostname(), "pid": os.getppid(), "token": "x"})
    client(redis_url).set("pump:instance:dup", other, px=60000)
    with pytest.raises(RuntimeError, match="uses instance_id 'dup'"):
        await RedisSource(r, "pump", "dup", 30).register()
    dead = json.dumps({"host": socket.gethostname(), "pid": 2**22 + 12345, "token": "y"})
    client(redis_url).set("pump:instance:dup", dead, px=60000)
    assert await RedisSource(r, "pump", "dup", 30).register() is True  # previous run died: take over
    await r.aclose()


async def test_park_is_idempotent_and_marked(src: RedisSource, redis_url: str) -> None:
    backlog = backlog_key("pump", "csv")
    assert await src.park(backlog, "batch-1", [b"a", b"b"]) == 2
    assert await src.park(backlog, "batch-1", [b"a", b"b"]) == 0  # a retried park adds nothing
    claim = await src.claim(backlog, 100)
    assert claim is not None and claim.raws == [b"a", b"b"] and claim.batch_id == "batch-1"


async def test_heartbeat_renews_leases(src: RedisSource, redis_url: str) -> None:
    fill(redis_url, 3)
    claim = await src.claim(KEY, 3)
    assert claim is not None
    client(redis_url).zadd(KEY.leases, {claim.member: 5})
    assert await src.heartbeat() == 0
    assert client(redis_url).zscore(KEY.leases, claim.member) > 1e12


async def test_a_late_progress_mark_does_not_outlive_the_batch(src: RedisSource, redis_url: str) -> None:
    """Two pumps finish at once: the ack may land before the other pump's mark; the mark must
    then not recreate the batch's progress hash."""
    fill(redis_url, 3)
    claim = await src.claim(KEY, 3)
    assert claim is not None
    await src.mark_done(claim, "a")
    assert client(redis_url).hkeys(KEY.done(claim.batch_id)) == [b"a"]
    await src.ack(claim)
    await src.mark_done(claim, "b")  # arrives after the ack
    assert not client(redis_url).exists(KEY.done(claim.batch_id))
