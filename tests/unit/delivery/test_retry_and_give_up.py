"""Transient failures: retried with capped, jittered backoff on the injected clock, until the
policy gives up and the records go to the dead letters (or, with ``--once``, to the backlog)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pump.config.model import Delivery
from pump.delivery.retry import backoff_bound
from pump.errors import RetriableError
from tests.helpers import numbered
from tests.unit.delivery.rig import Rig, ScriptedSink


def down(n: int) -> list[BaseException | None]:
    return [RetriableError("server down (test)") for _ in range(n)]


async def test_an_outage_is_retried_until_it_ends_and_nothing_is_dead_lettered(make_rig: Callable[..., Rig]) -> None:
    sink = ScriptedSink(outcomes=down(6))
    rig = make_rig({"p": sink}, policy=Delivery(backoff_initial=0.5, backoff_max=4)).start()
    await rig.push(numbered(3))

    await rig.drain()

    assert len({bid for bid, _ in sink.calls}) == 1  # the same records, under the same id, every time
    assert len(sink.calls) == 7 and sink.written == ["/items/0", "/items/1", "/items/2"]
    assert len(rig.clock.sleeps) == 6
    assert all(0 <= s <= backoff_bound(i, 0.5, 4) for i, s in enumerate(rig.clock.sleeps, start=1))
    assert rig.sample("pump_retries_total", pump="p") == 6
    assert rig.sample("pump_records_failed_total", pump="p") == 18
    assert rig.sample("pump_failing", pump="p") == 0  # recovered with the successful write
    assert not rig.workers["p"].failing and rig.workers["p"].last_error == "server down (test)"
    assert await rig.dead("p") == [] and await rig.list_len() == 0 and await rig.claimed_keys() == []


async def test_max_attempts_gives_up_to_the_dead_letters(make_rig: Callable[..., Rig]) -> None:
    sink = ScriptedSink(outcomes=down(100))
    rig = make_rig({"p": sink}, policy=Delivery(max_attempts=3, backoff_initial=1, backoff_max=1)).start()
    payloads = await rig.push(numbered(2))

    await rig.drain()

    assert len(sink.calls) == 3 and sink.written == []
    assert len(rig.clock.sleeps) == 2  # between the attempts, none after the last
    dead = await rig.dead("p")
    assert [(e.payload, e.attempts, e.reason) for e in dead] == [(p, 3, "gave up after 3 attempt(s): server down (test)") for p in payloads]
    assert rig.sample("pump_records_deadlettered_total", pump="p") == 2
    assert rig.workers["p"].gave_up_records == 2
    assert await rig.list_len() == 0 and await rig.claimed_keys() == []  # dead-lettered counts as done


async def test_max_age_gives_up_once_the_first_failure_is_that_old(make_rig: Callable[..., Rig]) -> None:
    sink = ScriptedSink(outcomes=down(10_000))
    rig = make_rig({"p": sink}, policy=Delivery(max_age=60, backoff_initial=5, backoff_max=5)).start()
    await rig.push(numbered(1))
    started = rig.clock.now()

    await rig.drain()

    [entry] = await rig.dead("p")
    assert entry.reason.startswith(f"gave up after {entry.attempts} attempt(s): server down")
    # the last backoff crossed 60 s of (fake) time since the first failure, the one before had not
    assert sum(rig.clock.sleeps) >= 60 > sum(rig.clock.sleeps[:-1])
    assert rig.clock.now() - started == pytest.approx(sum(rig.clock.sleeps))
    assert len(sink.calls) == entry.attempts == len(rig.clock.sleeps) + 1


async def test_with_once_a_failing_pump_parks_its_batch_after_its_patience(make_rig: Callable[..., Rig]) -> None:
    sink = ScriptedSink(outcomes=down(10_000))
    rig = make_rig({"p": sink}, policy=Delivery(backoff_initial=2, backoff_max=2), once=True, once_patience=10).start()
    await rig.push(numbered(4))

    await rig.drain()

    assert sum(rig.clock.sleeps) >= 10 > sum(rig.clock.sleeps[:-1])
    assert await rig.backlog_len("p") == 4 and await rig.dead("p") == []
    assert rig.sample("pump_records_parked_total", pump="p") == 4
    assert await rig.list_len() == 0 and await rig.claimed_keys() == []
    assert rig.workers["p"].failing  # still: nothing was written


async def test_a_sink_that_cannot_start_is_retried_and_its_batch_waits(make_rig: Callable[..., Rig]) -> None:
    class SlowStart(ScriptedSink):
        starts = 0

        async def start(self) -> None:
            self.starts += 1
            if self.starts <= 3:
                raise ConnectionRefusedError("connection refused (test)")

    sink = SlowStart()
    rig = make_rig({"p": sink}).start()
    await rig.push(numbered(2))

    await rig.drain()

    assert sink.starts == 4 and len(rig.clock.sleeps) == 3
    assert sink.written == ["/items/0", "/items/1"] and not rig.workers["p"].failing
