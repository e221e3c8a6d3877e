"""One worker per pump: a bounded queue, a write timeout, retries, poison isolation, dead letters.

Each pump is independent: a slow or failing pump fills only its own queue. When the queue is full,
or while the pump is failing, its share of new batches is parked in its own Redis backlog
(``ack.Acknowledger.park``) and the other pumps carry on; the worker drains that backlog once it
has room again, claiming from it through a :class:`Backlog`. Memory stays bounded by
``queue_records`` per pump whatever the backlog.

A worker knows nothing of the claim loop or of the other pumps: batches come in through
:meth:`PumpWorker.offer` (or its own backlog), and go out to the acknowledger (done, or parked)
and to the dead letters (``deadletter.DeadLetters``).

What happens when a write fails (retry, split, dead-letter) is :mod:`pump.delivery.write`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

from pump.config.model import Delivery
from pump.delivery.ack import Acknowledger, pump_backlogs
from pump.delivery.batch import Batch
from pump.delivery.clock import SYSTEM_CLOCK, Clock
from pump.delivery.deadletter import DeadLetters
from pump.delivery.publish import Publisher, publish_interval
from pump.delivery.retry import RetryState
from pump.delivery.tasks import CANCEL_GRACE, wait_tasks
from pump.delivery.write import Abandoned, ParkRequested, WritePath
from pump.sinks.base import Sink
from pump.source.redis_list import SourceKey
from pump.telemetry.metrics import Metrics
from pump.transforms import View

log = logging.getLogger(__name__)


class Backlog(Protocol):
    """Where an idle pump takes more work: the next batch of its own Redis backlog, claimed,
    decoded and tracked by the acknowledger (``fanout.Intake``); None when there is none."""

    async def claim_backlog(self, keys: Sequence[SourceKey]) -> Batch | None: ...


class PumpWorker(WritePath):
    """One pump's queue, intake and lifecycle; the write path (retries, splits, dead letters) is
    :class:`pump.delivery.write.WritePath`."""

    def __init__(
        self,
        name: str,
        sink: Sink,
        view: View,
        policy: Delivery,
        timeout: float,
        metrics: Metrics,
        acks: Acknowledger,
        dead_letters: DeadLetters,
        namespace: str,
        backlog: Backlog | None = None,
        poll_interval: float = 1.0,
        once: bool = False,
        once_patience: float = 10.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.name = name
        self.sink = sink
        self.view = view
        self.policy = policy
        self.timeout = timeout
        self.metrics = metrics
        self.acks = acks
        self.dead_letters = dead_letters
        self.backlog = backlog
        self.poll_interval = poll_interval
        self.once = once
        self.once_patience = once_patience
        self.clock = clock
        self.queue: deque[Batch] = deque()  # each with this pump's share in ``batch.shares[name]``
        self.queued_records = 0
        self.busy = 0
        self.started = False
        self.failing_since: float | None = None  # clock.now() of the first failure of this outage
        self.last_error = ""
        self.backlogs = pump_backlogs(namespace, name)
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._stop = asyncio.Event()
        self._stopping = False
        self._intake_closed = False
        self._tasks: list[asyncio.Task[None]] = []
        self.gave_up_records = 0
        self.delivered = 0
        interval = publish_interval(sink)
        #: ``publish_interval``: batches are held and flushed together (``pump.delivery.publish``).
        self.publisher: Publisher | None = Publisher(self, interval) if interval else None

    # -- intake ----------------------------------------------------------------------------------

    async def offer(self, batch: Batch, park_if_full: Callable[[], bool] | None = None) -> None:
        """Take this pump's view of a batch, or park it if the pump is full or failing.

        A healthy but full pump waits for room (backpressure on whoever offers), unless
        ``park_if_full`` says waiting would hold up someone else (and ``when_full`` is ``park``):
        only then is its share parked. Parking costs Redis round trips and a second decode, so it
        is not done for nothing."""
        share = self.view(batch.records)
        filtered = len(batch.records) - len(share)
        if filtered:
            self.metrics.records_filtered.labels(self.name).inc(filtered)
        if not share:
            await self.acks.finished(batch, self.name)
            return
        while self.is_full(len(share)) and self.failing_since is None and not self._closing() and self._should_wait(park_if_full):
            self._room.clear()
            await self._room.wait()
        if self._closing() and self.failing_since is None:
            return  # stopping: the batch stays unfinished and goes back to its list at shutdown
        if self.failing_since is not None or self.is_full(len(share)):
            await self.acks.park(batch, self.name)
            return
        batch.shares[self.name] = share
        self.queue.append(batch)
        self.queued_records += len(share)
        self.metrics.queue_records.labels(self.name).set(self.queued_records)
        self._wake.set()

    def _should_wait(self, park_if_full: Callable[[], bool] | None) -> bool:
        if self.policy.when_full == "wait" or park_if_full is None:
            return True
        return not park_if_full()

    def is_full(self, incoming: int) -> bool:
        """No room for ``incoming`` more records (an empty, idle pump always takes one batch)."""
        return self.queued_records + incoming > self.policy.queue_records and self.queued_records + self.busy > 0

    @property
    def has_room_to_spare(self) -> bool:
        """Healthy and under half its queue: this pump would soon run out of work if made to wait."""
        return not self.failing and self.queued_records <= self.policy.queue_records // 2

    def _closing(self) -> bool:
        return self._stopping or self._intake_closed

    def close_intake(self) -> None:
        """No more batches will be offered (the claim loop is stopping): an offer waiting for room
        looks again (and leaves its batch unfinished), and the backlog is not claimed from."""
        self._intake_closed = True
        self._room.set()

    def poke(self) -> None:
        """Wake the worker to look at its backlog now instead of at its next poll."""
        self._wake.set()

    @property
    def idle(self) -> bool:
        return not self.queue and self.busy == 0

    @property
    def failing(self) -> bool:
        return self.failing_since is not None

    def failing_for(self) -> float | None:
        """Seconds this pump has been failing, or None while it is healthy."""
        return None if self.failing_since is None else self.clock.now() - self.failing_since

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> list[asyncio.Task[None]]:
        self._tasks = [asyncio.create_task(self._run(), name=f"pump-{self.name}-{i}") for i in range(self.policy.concurrency)]
        if self.publisher is not None:
            self._tasks.append(asyncio.create_task(self.publisher.run(), name=f"pump-{self.name}-publish"))
        if getattr(self.sink, "start_at_launch", False):  # a sink that serves (prometheus): up before the first batch
            self._tasks.append(asyncio.create_task(self._start_early(), name=f"pump-{self.name}-start"))
        return self._tasks

    async def _start_early(self) -> None:
        with contextlib.suppress(ParkRequested):
            await self._ensure_started()

    async def stop(self, deadline: float, interrupt: asyncio.Event | None = None) -> None:
        """Stop taking work; give in-flight writes until ``deadline`` (monotonic) to finish, or
        until ``interrupt`` is set (a second stop request: cancel them now)."""
        self._stopping = True
        self._stop.set()
        self._wake.set()
        self._room.set()
        if self.publisher is not None:
            self.publisher.wake()
        pending = await wait_tasks(self._tasks, deadline - time.monotonic(), interrupt)
        for task in pending:
            task.cancel()
        if pending:  # bounded: a lost cancellation must not hang the shutdown
            await wait_tasks(pending, CANCEL_GRACE)
        hurry = interrupt is not None and interrupt.is_set()
        if self.publisher is not None and not hurry:
            await self.publisher.final_flush(deadline - time.monotonic())
        try:
            await asyncio.wait_for(self.sink.close(), timeout=2 if hurry else 10)
        except Exception as exc:  # closing must not hide the shutdown summary
            log.warning("Pump did not close cleanly.", extra={"pump": self.name, "error": str(exc) or type(exc).__name__})

    async def _ensure_started(self) -> bool:
        """Connect the sink, retrying with backoff: a server that is down at start is an outage
        like any other, not a reason to exit. False if asked to stop first."""
        state = RetryState(self.policy, clock=self.clock)
        while not self.started:
            try:
                await self.sink.start()
                self.started = True
                self._recovered()
            except Exception as exc:
                state.failed(f"{type(exc).__name__}: {exc}")
                self._failed(state.last_error)
                await self._park_queue()
                if self.once and self._patience_over(state):
                    raise ParkRequested from exc
                await self._sleep(state.delay())
                if self._stopping:
                    return False
        return True

    async def _run(self) -> None:
        while not self._stopping or self.queue:
            batch = await self._next()
            if batch is None:
                if self._stopping:
                    return
                continue
            share = batch.shares[self.name]
            self.busy += 1
            try:
                if not await self._ensure_started():
                    return  # stopping: the batch stays unacknowledged and is returned to its list
                if self.publisher is not None:
                    await self.publisher.hold(batch, share)  # finished when its flush is written
                else:
                    await self._deliver(batch, share)
                    await self.acks.finished(batch, self.name)
            except ParkRequested:
                await self.acks.park(batch, self.name)
            except Abandoned:
                return  # unfinished: released to its list by the shutdown
            finally:
                self.busy -= 1
                batch.shares.pop(self.name, None)
                self.queued_records -= len(share)
                self.metrics.queue_records.labels(self.name).set(self.queued_records)
                self._room.set()

    async def _next(self) -> Batch | None:
        if self.queue:
            return self.queue.popleft()
        # Cleared before looking at the backlog, not after: a batch offered (or a poke) while the
        # backlog claim is on its way must wake the wait below, not wait for the next poll.
        self._wake.clear()
        idle_and_healthy = not self._stopping and not self.failing and not self._intake_closed
        if idle_and_healthy and self.backlog is not None:
            batch = await self.backlog.claim_backlog(self.backlogs)
            if batch is not None:
                await self.offer(batch)
                return self.queue.popleft() if self.queue else None
        if self._stopping:
            return None
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval)
        except TimeoutError:
            pass
        return None
