"""The acknowledgement path: a batch leaves Redis only when every pump has written it,
dead-lettered it or parked it; progress is kept per pump, so a batch that comes back is given
only to the pumps that had not finished it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import fakeredis

from pump.delivery.deadletter import UNDECODABLE, Letter
from pump.errors import RetriableError
from pump.sinks.base import SinkBatch
from tests.helpers import numbered
from tests.unit.delivery.rig import Rig, ScriptedSink


async def test_a_batch_stays_in_redis_until_the_last_pump_has_it(make_rig: Callable[..., Rig]) -> None:
    b_may_finish = asyncio.Event()
    a, b = ScriptedSink(), ScriptedSink(outcomes=[b_may_finish])
    rig = make_rig({"a": a, "b": b}).start()
    await rig.push(numbered(5))

    await rig.fanout.drain()
    await rig.until(lambda: len(a.written) == 5, "a wrote the batch")
    for _ in range(100):
        await asyncio.sleep(0)

    [batch] = rig.acks.batches
    assert batch.pending == {"b"}
    assert await rig.redis.llen(rig.key.proc(batch.claim.token)) == 5  # still claimed, all 5
    assert await rig.redis.hkeys(rig.key.done(batch.id)) == [b"a"]  # a's progress is durable
    assert rig.acks.acked == 0

    b_may_finish.set()
    await rig.settled()
    assert rig.acks.acked == 1 and await rig.claimed_keys() == []
    assert await rig.redis.zcard(rig.key.leases) == 0 and rig.source.inflight == {}
    assert rig.sample("pump_batch_latency_seconds_count") == 1


async def test_a_returned_batch_goes_only_to_the_pumps_that_had_not_finished(
    make_rig: Callable[..., Rig], redis: fakeredis.FakeAsyncRedis
) -> None:
    a, b = ScriptedSink(), ScriptedSink(outcomes=[asyncio.Event()])  # b hangs
    rig = make_rig({"a": a, "b": b}).start()
    await rig.push(numbered(5))
    await rig.fanout.drain()
    await rig.until(lambda: len(a.written) == 5, "a wrote the batch")
    [batch_id] = {bid for bid, _ in b.calls}

    assert await rig.stop() == 5  # shutdown: the unfinished batch goes back to its list
    assert await rig.list_len() == 5

    a2, b2 = ScriptedSink(), ScriptedSink()
    again = make_rig({"a": a2, "b": b2}).start()
    await again.drain()
    assert a2.calls == []  # a had finished it: skipped
    assert b2.calls == [(batch_id, [f"/items/{i}" for i in range(5)])]  # same batch, same id
    assert await again.list_len() == 0 and await again.claimed_keys() == []


async def test_dead_lettering_counts_as_done(make_rig: Callable[..., Rig]) -> None:
    a, b = ScriptedSink(), ScriptedSink(refuse=lambda r: True)
    rig = make_rig({"a": a, "b": b}, claim_size=2).start()
    await rig.push(numbered(2))

    await rig.drain()

    assert len(await rig.dead("b")) == 2 and a.written == ["/items/0", "/items/1"]
    assert await rig.list_len() == 0 and await rig.claimed_keys() == []


async def test_undecodable_payloads_are_dead_lettered_once_and_never_reach_a_sink(make_rig: Callable[..., Rig]) -> None:
    sink = ScriptedSink()
    rig = make_rig({"p": sink}, claim_size=10).start()
    good = await rig.push(numbered(3))
    await rig.redis.rpush(rig.key.name, b"\xc1not-a-record", b"\x93\x01\x02")

    await rig.drain()

    assert sink.written == ["/items/0", "/items/1", "/items/2"]
    dead = await rig.dead(UNDECODABLE)
    assert [e.payload for e in dead] == [b"\xc1not-a-record", b"\x93\x01\x02"]
    assert all(e.pump == UNDECODABLE and e.reason and e.attempts == 0 and e.record_id == "" for e in dead)
    assert rig.intake.undecodable == 2 and rig.sample("pump_records_undecodable_total", source=rig.key.name) == 2
    assert rig.sample("pump_records_decoded_total", source=rig.key.name) == 3
    assert len(good) == 3 and await rig.claimed_keys() == []


async def test_a_batch_of_nothing_but_undecodable_payloads_is_acknowledged_without_a_write(make_rig: Callable[..., Rig]) -> None:
    sink = ScriptedSink()
    rig = make_rig({"p": sink}).start()
    await rig.redis.rpush(rig.key.name, b"\xc1", b"\xc1\xc1")

    await rig.drain()

    assert sink.calls == [] and len(await rig.dead(UNDECODABLE)) == 2 and rig.acks.acked == 1
    assert await rig.list_len() == 0 and await rig.claimed_keys() == []


async def test_a_dead_letter_written_again_is_not_duplicated(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig({"p": ScriptedSink()})
    await rig.push(numbered(2))
    claim = await rig.intake.claim(rig.key)
    assert claim is not None
    letters = [Letter(raw, "refused (password=hunter2-secret)", f"id{i}") for i, raw in enumerate(claim.raws)]

    for _ in range(2):  # a retried append whose reply was lost, or the batch redelivered
        await rig.dead_letters.write("p", claim, letters, attempts=1)

    dead = await rig.dead("p")
    assert [(e.record_id, e.batch_id) for e in dead] == [("id0", claim.batch_id), ("id1", claim.batch_id)]
    assert all("hunter2" not in e.reason for e in dead)  # reasons are scrubbed where they are written


async def test_a_failing_pumps_queue_is_parked_so_the_batches_can_be_acknowledged(make_rig: Callable[..., Rig]) -> None:
    back = asyncio.Event()

    class HangsThenFails(ScriptedSink):
        async def write(self, batch: SinkBatch) -> None:
            if len(self.calls) == 0:
                self.calls.append((batch.id, []))
                await back.wait()
                raise RetriableError("down (test)")
            await super().write(batch)

    a = HangsThenFails()
    b = ScriptedSink()
    rig = make_rig({"a": a, "b": b}).start()
    await rig.push(numbered(15))
    await rig.fanout.drain()  # a: batch 1 in its write, batches 2 and 3 queued
    await rig.until(lambda: len(b.written) == 15, "b wrote everything")
    assert len(rig.workers["a"].queue) == 2

    back.set()  # the write fails now: a's queue is parked while it backs off
    await rig.until(lambda: rig.sample("pump_records_parked_total", pump="a") == 10, "a's queue parked")
    assert not rig.workers["a"].queue and rig.workers["a"].queued_records == 5  # only batch 1, in its write
    # batch 1 succeeds on the retry; then, idle and healthy, a takes its backlog by itself
    await rig.until(lambda: len(a.written) == 15, "a wrote batch 1, then its backlog")
    await rig.settled()
    assert a.written == [f"/items/{i}" for i in range(15)]
    assert await rig.backlog_len("a") == 0 and await rig.claimed_keys() == []
