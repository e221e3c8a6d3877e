"""The in-flight window (at most ``max_batches_in_flight`` gateway claims held; a slot comes back
when its batch leaves the process) and the stop sequence with batches in flight."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from pump.config.model import Delivery
from pump.delivery.ack import pump_backlog
from tests.helpers import numbered
from tests.unit.delivery.rig import NS, Rig, ScriptedSink


async def test_the_window_bounds_the_batches_held_and_each_slot_comes_back(make_rig: Callable[..., Rig]) -> None:
    gate = asyncio.Event()
    sink = ScriptedSink(gate=gate)
    rig = make_rig({"p": sink}, max_in_flight=2).start()
    await rig.push(numbered(20))

    drain = asyncio.create_task(rig.fanout.drain())
    await rig.until(lambda: len(rig.acks.batches) == 2 and rig.acks.window_full, "two batches claimed")
    for _ in range(200):
        await asyncio.sleep(0)
    assert len(rig.acks.batches) == 2 and await rig.list_len() == 10  # the third claim waits for a slot
    assert not drain.done()

    gate.set()
    await drain
    await rig.settled()
    assert rig.sample("pump_batches_claimed_total", source=rig.key.name) == 4 and len(sink.written) == 20
    assert not rig.acks.window_full and rig.acks.acked == 4


async def test_empty_claims_give_their_slot_back(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig({"p": ScriptedSink()}, max_in_flight=1).start()
    for _ in range(5):
        await rig.drain()  # an empty list: each claim comes back empty
        assert not rig.acks.window_full
    await rig.push(numbered(3))
    await rig.drain()
    assert not rig.acks.window_full and rig.acks.acked == 1


async def test_a_pumps_backlog_is_claimed_even_when_the_window_is_full(make_rig: Callable[..., Rig]) -> None:
    p, q = ScriptedSink(outcomes=[asyncio.Event()]), ScriptedSink()  # p hangs on its first write
    rig = make_rig({"p": p, "q": q}, max_in_flight=1).start()
    await rig.push(numbered(5))
    drain = asyncio.create_task(rig.fanout.drain())  # its next claim waits for the slot p holds
    await rig.until(lambda: len(q.written) == 5 and len(p.calls) == 1, "p holds the only slot")
    assert rig.acks.window_full and not drain.done()

    parked = await rig.push(numbered(8)[5:], key="elsewhere")
    await rig.source.park(pump_backlog(NS, "q", "msgpack"), "old-batch", parked)
    await rig.redis.delete("elsewhere")
    rig.workers["q"].poke()
    await rig.until(lambda: len(q.written) == 8, "q drained its backlog")

    assert q.calls[-1] == ("old-batch", ["/items/5", "/items/6", "/items/7"])
    assert rig.acks.window_full and not drain.done()  # still p's: backlog batches take no slot


async def test_stopping_returns_every_batch_in_flight_to_the_head_of_its_list_in_order(make_rig: Callable[..., Rig]) -> None:
    sink = ScriptedSink(gate=asyncio.Event())  # never opens: every write hangs
    rig = make_rig({"p": sink}, max_in_flight=2).start()
    payloads = await rig.push(numbered(15))
    drain = asyncio.create_task(rig.fanout.drain())
    await rig.until(lambda: len(rig.acks.batches) == 2 and len(sink.calls) == 1, "batch 1 writing, batch 2 queued")
    ids = [bid for bid, _ in sink.calls]

    returned = await rig.stop(grace=0)  # the hanging write is cancelled

    assert returned == 10
    assert drain.done()  # the claim waiting for a slot gave up
    assert await rig.redis.lrange(rig.key.name, 0, -1) == payloads  # in their original order
    assert rig.acks.batches == set() and rig.source.inflight == {} and await rig.claimed_keys() == []
    assert await rig.dead("p") == [] and sink.closed == 1
    assert rig.sample("pump_records_requeued_total", reason="shutdown") == 10

    again_sink = ScriptedSink()
    again = make_rig({"p": again_sink}).start()
    await again.drain()
    assert again_sink.written == [f"/items/{i}" for i in range(15)]
    assert again_sink.calls[0][0] == ids[0]  # a returned batch comes out again as the same batch


async def test_an_offer_waiting_for_room_gives_up_when_the_loop_stops(make_rig: Callable[..., Rig]) -> None:
    sink = ScriptedSink(gate=asyncio.Event())
    rig = make_rig({"p": sink}, policy=Delivery(queue_records=5)).start()
    await rig.push(numbered(10))
    drain = asyncio.create_task(rig.fanout.drain())
    await rig.until(lambda: len(sink.calls) == 1 and len(rig.acks.batches) == 2, "batch 2 waits for room")
    assert not drain.done()

    assert await rig.stop(grace=0) == 10
    assert drain.done() and rig.sample("pump_records_parked_total", pump="p") == 0
    assert await rig.list_len() == 10
