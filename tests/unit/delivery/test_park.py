"""Parking: a failing or full pump's share goes to its own Redis backlog so the batch can be
acknowledged for the others, and the pump drains that backlog once it can (unparking)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from pump.config.model import Delivery
from pump.errors import RetriableError
from tests.helpers import numbered
from tests.unit.delivery.rig import Rig, ScriptedSink


def paths(n: int) -> list[str]:
    return [f"/items/{i}" for i in range(n)]


async def test_a_failing_pump_parks_new_batches_and_drains_its_backlog_when_it_recovers(make_rig: Callable[..., Rig]) -> None:
    back = asyncio.Event()
    a = ScriptedSink(outcomes=[RetriableError("server down (test)"), back])  # fails, then hangs until `back`
    b = ScriptedSink()
    rig = make_rig({"a": a, "b": b}).start()
    await rig.push(numbered(5))
    await rig.fanout.drain()
    await rig.until(lambda: rig.workers["a"].failing and len(a.calls) == 2, "a failing, retrying")

    await rig.push(numbered(15)[5:])
    await rig.fanout.drain()
    await rig.until(lambda: len(rig.acks.batches) == 1, "batches 2 and 3 acknowledged for b")

    assert b.written == paths(15)
    assert await rig.backlog_len("a") == 10 and rig.sample("pump_records_parked_total", pump="a") == 10
    assert await rig.list_len() == 0
    [first] = rig.acks.batches
    assert first.pending == {"a"}  # only batch 1, which a holds, is still claimed

    back.set()
    await rig.settled()
    assert not rig.workers["a"].failing
    rig.workers["a"].poke()  # instead of waiting for its poll
    await rig.until(lambda: len(a.written) == 15, "a drained its backlog")
    await rig.settled()

    assert a.written == paths(15) and b.written == paths(15)  # everything, once, in order
    ids_a = [bid for bid, _ in a.calls]
    ids_b = [bid for bid, _ in b.calls]
    assert ids_a == [ids_b[0], *ids_b]  # parked shares come back under their batch ids
    assert await rig.backlog_len("a") == 0 and await rig.claimed_keys() == []


async def test_a_full_pump_parks_rather_than_hold_up_a_pump_with_room(make_rig: Callable[..., Rig]) -> None:
    slow_done = asyncio.Event()
    slow = ScriptedSink(outcomes=[slow_done])
    fast = ScriptedSink()
    rig = make_rig({"slow": slow, "fast": fast}, policies={"slow": Delivery(queue_records=5, when_full="park")}).start()
    await rig.push(numbered(15))

    await rig.fanout.drain()  # returns: slow's share of batches 2 and 3 was parked, nobody waited
    await rig.until(lambda: len(fast.written) == 15 and len(rig.acks.batches) == 1, "fast done")

    assert await rig.backlog_len("slow") == 10
    assert not rig.workers["slow"].failing  # full, not failing
    slow_done.set()
    await rig.settled()
    rig.workers["slow"].poke()
    await rig.until(lambda: len(slow.written) == 15, "slow drained its backlog")
    assert slow.written == paths(15)


async def test_when_full_wait_makes_the_claim_loop_wait_instead_of_parking(make_rig: Callable[..., Rig]) -> None:
    slow_done = asyncio.Event()
    slow = ScriptedSink(outcomes=[slow_done])
    fast = ScriptedSink()
    rig = make_rig({"slow": slow, "fast": fast}, policies={"slow": Delivery(queue_records=5, when_full="wait")}).start()
    await rig.push(numbered(15))

    drain = asyncio.create_task(rig.fanout.drain())
    await rig.until(lambda: len(fast.written) == 10, "fast wrote batches 1 and 2")
    for _ in range(200):
        await asyncio.sleep(0)
    # pumps are offered a batch in name order: fast took batch 2, slow's turn waits for room, and
    # batch 3 waits with it
    assert not drain.done() and len(fast.written) == 10

    slow_done.set()
    await drain
    await rig.settled()
    assert slow.written == paths(15) and fast.written == paths(15)
    assert rig.sample("pump_records_parked_total", pump="slow") == 0


async def test_a_filter_that_leaves_nothing_finishes_the_pump_at_once(make_rig: Callable[..., Rig]) -> None:
    a, b = ScriptedSink(), ScriptedSink()
    rig = make_rig({"a": a, "b": b}, views={"b": lambda records: [r for r in records if r.path.endswith("3")]}).start()
    await rig.push(numbered(5))

    await rig.drain()

    assert a.written == paths(5) and b.written == ["/items/3"]
    assert rig.sample("pump_records_filtered_total", pump="b") == 4
    assert await rig.claimed_keys() == []
