"""A pump's write path: one share of a batch to the sink, until every record is written or
dead-lettered.

What happens when a write fails depends on the error (``pump.errors``):

* ``RetriableError`` (and write timeouts): wait (full-jitter backoff, and at least the server's
  ``Retry-After`` when the error carries one) and write the same records again, forever by
  default, or until ``max_attempts``/``max_age`` sends them to the dead letters;
* ``RejectedRecords``: dead-letter the records the server refused, retry the ones it asks for;
* anything else: the batch holds a record the sink cannot take, so split it in halves and write
  each, down to the single bad record, which is dead-lettered with the error as the reason.

While the pump is failing its queued batches are parked in its Redis backlog. The state this
needs belongs to the :class:`pump.delivery.worker.PumpWorker` it is part of.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from pump.config.model import Delivery
from pump.delivery.ack import Acknowledger
from pump.delivery.batch import Batch
from pump.delivery.clock import Clock
from pump.delivery.deadletter import DeadLetters, Letter
from pump.delivery.retry import RetryState
from pump.errors import RejectedRecords, RetriableError
from pump.redact import scrub
from pump.sinks.base import Sink, SinkBatch
from pump.telemetry.metrics import Metrics

#: The worker's logger: these are its lines.
log = logging.getLogger("pump.delivery.worker")


class ParkRequested(Exception):
    """Internal: in ``--once`` mode a failing pump parks its work instead of retrying forever."""


class Abandoned(Exception):
    """Internal: stopping while a write is retrying; the batch goes back to Redis unfinished."""


class WritePath:
    """The write path of a :class:`~pump.delivery.worker.PumpWorker` (its base class)."""

    name: str
    sink: Sink
    policy: Delivery
    timeout: float
    metrics: Metrics
    clock: Clock
    once: bool
    once_patience: float
    acks: Acknowledger
    dead_letters: DeadLetters
    queue: deque[Batch]
    queued_records: int
    delivered: int
    gave_up_records: int
    failing_since: float | None
    last_error: str
    _room: asyncio.Event
    _stop: asyncio.Event
    _stopping: bool

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
