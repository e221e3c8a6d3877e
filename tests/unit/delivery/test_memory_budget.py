"""The in-flight window in bytes (``delivery.max_memory``): claims are sized to the room left and
pause while the budget is full; a claim larger than the whole budget still proceeds, alone."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from pump.delivery.memory import cost_of
from pump.record import Record
from pump.sinks.base import SinkBatch
from tests.helpers import make_record, msgpack_payloads
from tests.unit.delivery.rig import Rig, ScriptedSink


def same_size(n: int, body: str = "") -> list[Record]:
    """``n`` distinct records whose payloads all have the same length."""
    return [make_record(path=f"/items/{i:05d}", raw_path=f"/items/{i:05d}", raw_request=body) for i in range(n)]


class WatchingSink(ScriptedSink):
    """Notes, at every write, the bytes and batches the acknowledger holds."""

    def __init__(self, rig: Callable[[], Rig], gate: asyncio.Event | None = None) -> None:
        super().__init__(gate=gate)
        self.rig = rig
        self.held_bytes: list[int] = []
        self.held_batches: list[int] = []

    async def write(self, batch: SinkBatch) -> None:
        acks = self.rig().acks
        self.held_bytes.append(sum(cost_of(b.raws) for b in acks.batches))
        self.held_batches.append(len(acks.batches))
        await super().write(batch)


async def test_claims_fit_the_budget_and_pause_while_it_is_full(make_rig: Callable[..., Rig]) -> None:
    records = same_size(200)
    one = cost_of(msgpack_payloads(records[:1]))
    budget = 7 * one + one // 2  # room for 7 records, whatever the number of batches
    gate = asyncio.Event()
    holder: list[Rig] = []
    sink = WatchingSink(lambda: holder[0], gate=gate)
    rig = make_rig({"p": sink}, claim_size=50, max_in_flight=8, max_memory=budget).start()
    holder.append(rig)
    await rig.push(records)

    drain = asyncio.create_task(rig.fanout.drain())
    await rig.until(lambda: rig.acks.memory.full or rig.acks.memory.size_claim(rig.key.name, 50) is None, "budget used up")
    for _ in range(200):
        await asyncio.sleep(0)
    held = sum(cost_of(b.raws) for b in rig.acks.batches)
    assert not drain.done()  # the loop waits for memory, not for a slot (8 slots, 2 used)
    assert held <= budget and sum(len(b.raws) for b in rig.acks.batches) == 7
    assert await rig.list_len() == 200 - 7

    gate.set()
    await drain
    await rig.settled()
    assert sorted(sink.written) == sorted(r.path for r in records)  # every record, once
    assert max(sink.held_bytes) <= budget and rig.acks.memory.peak <= budget
    assert rig.acks.memory.used == 0 and not rig.acks.window_full


async def test_a_claim_larger_than_the_budget_proceeds_alone(make_rig: Callable[..., Rig]) -> None:
    holder: list[Rig] = []
    sink = WatchingSink(lambda: holder[0])
    rig = make_rig({"p": sink}, claim_size=5, max_in_flight=4, max_memory=100).start()  # < one record
    holder.append(rig)
    records = same_size(6, body="x" * 5000)
    await rig.push(records)

    await rig.drain()
    assert sorted(sink.written) == sorted(r.path for r in records)
    assert sink.held_batches == [1] * 6  # one record at a time, never two batches
    assert rig.acks.memory.used == 0


async def test_a_stop_while_waiting_for_memory_is_prompt(make_rig: Callable[..., Rig]) -> None:
    gate = asyncio.Event()
    rig = make_rig({"p": ScriptedSink(gate=gate)}, claim_size=5, max_memory=100).start()
    await rig.push(same_size(4))
    drain = asyncio.create_task(rig.fanout.drain())
    await rig.until(lambda: len(rig.acks.batches) == 1 and rig.acks.memory.size_claim(rig.key.name, 5) is None, "waiting for memory")
    returned = await rig.stop()
    await rig.until(drain.done, "drain ended")
    assert returned == 1 and await rig.list_len() == 4 and rig.acks.memory.used == 0


def test_the_window_is_full_when_the_room_left_is_short_of_one_record_not_only_when_used_up() -> None:
    """What a publishing pump's flush waits for (pump/delivery/publish.py): with a split budget the
    room left is often a few bytes short of one record while ``used < budget``."""
    from pump.delivery.memory import MemoryWindow

    window = MemoryWindow(budget=10_000)
    cost = window.hold("list", [b"x" * 1000] * 2)  # 2 × (4 × 1000 + 1024) = 10,048 → per record 5,024
    window.release(cost)
    held = window.hold("list", [b"x" * 1000])  # 5,024 used, 4,976 left: no room for one more
    assert window.used < window.budget and not window.full
    assert window.size_claim("list", 10) is None
    assert window.full  # a claim is waiting for room
    window.release(held)
    assert not window.full and window.size_claim("list", 10) == (1, 5024)
