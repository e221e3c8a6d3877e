"""``publish_interval`` (``pump.delivery.publish``): batches are held — claimed, unacknowledged —
and flushed together in one ``write_many``; early when the in-flight window fills (no deadlock),
at stop, and through the normal write path when the flush fails."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from pump.errors import BatchDataError, RetriableError
from pump.sinks.base import SinkBatch
from tests.helpers import numbered
from tests.unit.delivery.rig import Rig, ScriptedSink


class ManualClock:
    """Time moves only when the test says so; sleepers wake when it has moved far enough."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.moved = asyncio.Event()

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds
        self.moved.set()

    async def sleep(self, seconds: float, wake: asyncio.Event) -> None:
        until = self.t + seconds
        while self.t < until and not wake.is_set():
            self.moved.clear()
            waiter = asyncio.ensure_future(self.moved.wait())
            stopper = asyncio.ensure_future(wake.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            stopper.cancel()


class PublishingSink(ScriptedSink):
    """A scripted sink that also takes many batches at once (``write_many``)."""

    def __init__(self, interval: float = 300, many_outcomes: Sequence[BaseException | None] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.publish_interval = interval
        self.many_outcomes = list(many_outcomes)
        self.flushes: list[list[str]] = []  # batch ids of every successful write_many

    async def write_many(self, batches: Sequence[SinkBatch]) -> dict[str, dict[int, str]]:
        if self.many_outcomes:
            outcome = self.many_outcomes.pop(0)
            if outcome is not None:
                raise outcome
        if any(self.refuse(r) for b in batches for r in b.records):
            raise BatchDataError("value out of range (test)")
        self.flushes.append([b.id for b in batches])
        self.written.extend(r.path for b in batches for r in b.records)
        return {}


async def settle(rig: Rig, clock: ManualClock) -> None:
    """Let intervals pass until every batch is written and acknowledged."""
    for _ in range(50):
        if not rig.acks.batches and all(w.idle for w in rig.workers.values()):
            return
        clock.advance(3600)
        for _ in range(50):
            await asyncio.sleep(0)
    raise AssertionError("never settled")


def rig_with(make_rig: Callable[..., Rig], sink: PublishingSink, **kwargs: Any) -> tuple[Rig, ManualClock]:
    rig = make_rig({"agg": sink}, **kwargs)
    clock = ManualClock()
    rig.workers["agg"].clock = clock
    assert rig.workers["agg"].publisher is not None
    rig.workers["agg"].publisher._since = clock.now()
    return rig.start(), clock


async def test_batches_are_held_until_the_interval_then_written_together(make_rig: Callable[..., Rig]) -> None:
    sink = PublishingSink(interval=300)
    rig, clock = rig_with(make_rig, sink, max_in_flight=8)
    await rig.push(numbered(20))
    await rig.fanout.drain()
    publisher = rig.workers["agg"].publisher
    assert publisher is not None
    await rig.until(lambda: len(publisher.held) == 4, "four batches held")
    assert sink.flushes == [] and sink.written == [] and rig.acks.acked == 0  # claimed, not acknowledged
    assert await rig.list_len() == 0
    clock.advance(299)
    for _ in range(100):
        await asyncio.sleep(0)
    assert sink.flushes == []
    clock.advance(2)
    await rig.settled()
    assert len(sink.flushes) == 1 and len(sink.flushes[0]) == 4 and rig.acks.acked == 4
    assert sorted(sink.written) == sorted(r.path for r in numbered(20)) and sink.calls == []


async def test_a_full_window_flushes_early_instead_of_deadlocking(make_rig: Callable[..., Rig]) -> None:
    sink = PublishingSink(interval=3600)
    rig, clock = rig_with(make_rig, sink, max_in_flight=3)
    await rig.push(numbered(30))
    await rig.fanout.drain()  # six batches through a window of three: the claim waiting for a slot flushes
    await settle(rig, clock)  # the last ones are held until the interval
    sizes = [len(f) for f in sink.flushes]
    assert sum(sizes) == 6 and max(sizes) <= 3 and len(sizes) < 6 and rig.acks.acked == 6, sizes
    assert len(sink.written) == 30 and len(set(sink.written)) == 30


async def test_stop_writes_what_is_held(make_rig: Callable[..., Rig]) -> None:
    sink = PublishingSink(interval=3600)
    rig, _ = rig_with(make_rig, sink, max_in_flight=8)
    await rig.push(numbered(10))
    await rig.fanout.drain()
    publisher = rig.workers["agg"].publisher
    assert publisher is not None
    await rig.until(lambda: len(publisher.held) == 2, "two batches held")
    returned = await rig.stop(grace=5)
    assert returned == 0 and sink.flushes and len(sink.written) == 10 and rig.acks.acked == 2


async def test_an_outage_parks_all_but_the_oldest_which_is_retried(make_rig: Callable[..., Rig]) -> None:
    sink = PublishingSink(interval=3600, many_outcomes=[RetriableError("db down")], outcomes=[RetriableError("still down"), None])
    rig, clock = rig_with(make_rig, sink, max_in_flight=3)
    await rig.push(numbered(15))
    drain = asyncio.create_task(rig.fanout.drain())
    await rig.until(lambda: len(sink.calls) == 1, "the oldest batch retried on its own")
    while len(sink.calls) < 2:  # the retry's backoff passes
        clock.advance(5)
        await asyncio.sleep(0)
    await drain
    rig.workers["agg"].poke()  # the parked two come back from the backlog and are held again
    await rig.until(lambda: rig.workers["agg"].publisher is not None and len(rig.workers["agg"].publisher.held) == 2, "held again")
    await settle(rig, clock)  # and flushed at the interval
    assert len(sink.written) == 15
    assert sorted(sink.written) == sorted(r.path for r in numbered(15))
    assert [c[0] for c in sink.calls] == [sink.calls[0][0]] * 2  # the oldest, twice (failed, then written)


async def test_refused_data_goes_batch_by_batch_and_only_the_bad_record_is_dead_lettered(make_rig: Callable[..., Rig]) -> None:
    sink = PublishingSink(interval=3600, many_outcomes=[BatchDataError("out of range")], refuse=lambda r: r.path == "/items/7")
    rig, clock = rig_with(make_rig, sink, max_in_flight=2)
    await rig.push(numbered(10))
    await rig.fanout.drain()
    await settle(rig, clock)
    assert len(sink.written) == 9 and rig.acks.acked == 2
    assert "/items/7" not in sink.written and rig.acks.acked == 2
    assert [e.reason for e in await rig.dead("agg")] == ["BatchDataError: value out of range (test)"]
