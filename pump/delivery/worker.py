"""One worker per pump: a bounded queue, a write timeout, retries, poison isolation, dead letters.

Each pump is independent: a slow or failing pump fills only its own queue. When the queue is full,
or while the pump is failing, its share of new batches is parked in its own Redis backlog
(``ack.Acknowledger.park``) and the other pumps carry on; the worker drains that backlog once it
has room again, claiming from it through a :class:`Backlog`. Memory stays bounded by
``queue_records`` per pump whatever the backlog.

A worker knows nothing of the claim loop or of the other pumps: batches come in through
:meth:`PumpWorker.offer` (or its own backlog), and go out to the acknowledger (done, or parked)
and to the dead letters (``deadletter.DeadLetters``).

What happens when a write fails depends on the error (``pump.errors``):

* ``RetriableError`` (and write timeouts): wait (full-jitter backoff, and at least the server's
  ``Retry-After`` when the error carries one) and write the same records again, forever by
  default, or until ``max_attempts``/``max_age`` sends them to the dead letters;
* ``RejectedRecords``: dead-letter the records the server refused, retry the ones it asks for;
* anything else: the batch holds a record the sink cannot take, so split it in halves and write
  each, down to the single bad record, which is dead-lettered with the error as the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from pump.config.model import Delivery
from pump.delivery.ack import Acknowledger, pump_backlogs
from pump.delivery.batch import Batch
from pump.delivery.clock import SYSTEM_CLOCK, Clock
from pump.delivery.deadletter import DeadLetters, Letter
from pump.delivery.publish import Publisher, publish_interval
from pump.delivery.retry import RetryState
from pump.delivery.tasks import CANCEL_GRACE, wait_tasks
from pump.errors import RejectedRecords, RetriableError
from pump.redact import scrub
from pump.sinks.base import Sink, SinkBatch
from pump.source.redis_list import SourceKey
from pump.telemetry.metrics import Metrics
from pump.transforms import View

log = logging.getLogger(__name__)


class Backlog(Protocol):
    """Where an idle pump takes more work: the next batch of its own Redis backlog, claimed,
    decoded and tracked by the acknowledger (``fanout.Intake``); None when there is none."""

    async def claim_backlog(self, keys: Sequence[SourceKey]) -> Batch | None: ...


class ParkRequested(Exception):
    """Internal: in ``--once`` mode a failing pump parks its work instead of retrying forever."""


class Abandoned(Exception):
    """Internal: stopping while a write is retrying; the batch goes back to Redis unfinished."""


class PumpWorker:
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

    # -- writing ---------------------------------------------------------------------------------

    async def _deliver(self, batch: Batch, share: Sequence[Any]) -> None:
        """Write this pump's share of a batch to the sink, splitting and retrying until every
        record is written or dead-lettered."""
        parts: list[tuple[str, Sequence[Any]]] = [(batch.id, share)]
        state = RetryState(self.policy, clock=self.clock)
        while parts:
            part_id, records = parts.pop()
            try:
                await self._write(part_id, records, batch)
                state = RetryState(self.policy, clock=self.clock)
            except RetriableError as exc:
                self._count_failure(records, exc)
                parts += await self._retry_or_give_up(batch, state, part_id, records, str(exc), exc, failing=True)
            except RejectedRecords as exc:
                self._count_failure(records, exc)
                valid = range(len(records))
                rejected = [i for i in sorted(exc.rejected) if i in valid]
                for i in rejected:
                    await self._dead_letter(batch, [records[i]], exc.rejected[i], state.attempts + 1)
                retry = [records[i] for i in exc.retry if i in valid]
                written = len(records) - len(rejected) - len(retry)
                if written > 0:
                    self._count_success(written)
                if retry:
                    retry_id = f"{part_id}.r{state.attempts + 1}"
                    parts += await self._retry_or_give_up(
                        batch, state, retry_id, retry, f"{len(retry)} record(s) to retry", exc, failing=False
                    )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._count_failure(records, exc)
                reason = f"{type(exc).__name__}: {exc}"
                if len(records) == 1:
                    await self._dead_letter(batch, records, reason, state.attempts + 1)
                    continue
                mid = len(records) // 2
                log.warning(
                    "Write refused; splitting the batch to isolate the bad record.",
                    extra={"pump": self.name, "batch_id": part_id, "records": len(records), "error": reason},
                )
                parts.append((f"{part_id}.1", records[mid:]))
                parts.append((f"{part_id}.0", records[:mid]))

    async def _retry_or_give_up(
        self, batch: Batch, state: RetryState, part_id: str, records: Sequence[Any], error: str, exc: Exception, failing: bool
    ) -> list[tuple[str, Sequence[Any]]]:
        """A transient failure of ``records``: dead-letter them if the retry policy is spent, else
        wait (full-jitter backoff) and hand them back for another attempt. While the whole pump
        is failing, its queued batches are parked meanwhile."""
        state.failed(error)
        if state.exhausted():
            await self._dead_letter(batch, records, state.give_up_reason(), state.attempts)
            return []
        if self.once and self._patience_over(state):
            raise ParkRequested from exc
        if failing:
            await self._park_queue()
        retry_after = getattr(exc, "retry_after", None) or 0.0  # the server's Retry-After, if it sent one
        await self._sleep(max(state.delay(), retry_after))
        if self._stopping:
            raise Abandoned from exc
        self.metrics.retries.labels(self.name).inc()
        return [(part_id, records)]

    async def _write(self, part_id: str, records: Sequence[Any], batch: Batch) -> None:
        started = time.monotonic()
        sink_batch = SinkBatch(part_id, records, batch.key.name)
        try:
            if self.timeout > 0:
                async with asyncio.timeout(self.timeout):
                    await self.sink.write(sink_batch)
            else:
                await self.sink.write(sink_batch)
        except TimeoutError as exc:
            raise RetriableError(f"write timed out after {self.timeout:g} s") from exc
        self.metrics.write_seconds.labels(self.name).observe(time.monotonic() - started)
        self._count_success(len(records))

    def _count_success(self, n: int) -> None:
        self.delivered += n
        self.metrics.records_delivered.labels(self.name).inc(n)
        self.metrics.last_success.labels(self.name).set_to_current_time()
        self._recovered()

    def _count_failure(self, records: Sequence[Any], exc: Exception) -> None:
        self.metrics.records_failed.labels(self.name).inc(len(records))
        if isinstance(exc, RetriableError):
            self._failed(str(exc))

    def _failed(self, error: str) -> None:
        error = scrub(error)  # drivers' messages may hold a DSN: this is what /ready and the logs show
        self.last_error = error
        self._room.set()  # a waiting intake must now park instead
        if self.failing_since is None:
            self.failing_since = self.clock.now()
            self.metrics.pump_failing.labels(self.name).set(1)
            log.warning("Pump is failing; its new batches go to its Redis backlog meanwhile.", extra={"pump": self.name, "error": error})
        else:
            log.debug("Pump still failing.", extra={"pump": self.name, "error": error})

    def _recovered(self) -> None:
        if self.failing_since is not None:
            log.info(
                "Pump recovered.",
                extra={"pump": self.name, "failed_for_s": round(self.clock.now() - self.failing_since, 1)},
            )
            self.failing_since = None
            self.metrics.pump_failing.labels(self.name).set(0)

    def _patience_over(self, state: RetryState) -> bool:
        """``--once`` does not wait forever for a pump: after this long its work is parked."""
        return state.first_failure is not None and self.clock.now() - state.first_failure >= self.once_patience

    async def _park_queue(self) -> None:
        """While failing, queued batches wait in Redis rather than in this process's memory, and
        the batches they belong to can be acknowledged for the other pumps."""
        while self.queue:
            batch = self.queue.popleft()
            self.queued_records -= len(batch.shares.pop(self.name, ()))
            await self.acks.park(batch, self.name)
        self.metrics.queue_records.labels(self.name).set(self.queued_records)

    async def _dead_letter(self, batch: Batch, records: Sequence[Any], reason: str, attempts: int) -> None:
        reason = scrub(reason)  # kept in Redis and shown by `pump deadletter list`, and logged here
        letters = [Letter(batch.raw_of(r.record_id), reason, r.record_id) for r in records]
        key = await self.dead_letters.write(self.name, batch.claim, letters, attempts)
        self.metrics.records_deadlettered.labels(self.name).inc(len(records))
        self.gave_up_records += len(records)
        log.error(
            "Records dead-lettered.",
            extra={"pump": self.name, "records": len(records), "reason": reason[:300], "list": key},
        )

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake early when asked to stop (shutdown must not wait out a long backoff)."""
        await self.clock.sleep(seconds, self._stop)
