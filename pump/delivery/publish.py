"""Scheduled publishing (``publish_interval``, webMethods' "publish interval of performance
metrics"): an aggregate pump writes its in-memory aggregate every N minutes instead of every
batch — fewer, larger upserts — without giving up exactly-once.

How it stays exactly-once: a batch given to the pump is *held*, not written and not finished, so
it stays claimed in Redis (under its lease) with its slot of the in-flight window. A flush hands
every held batch to the sink's ``write_many`` — one transaction that records each batch id in the
ledger with the merged upserts — and only then finishes them (acknowledgement). A crash before the
flush loses nothing (the batches come back under the same ids and nothing of theirs was written);
a crash after the commit and before the acknowledgement counts nothing twice (the ids are in the
ledger).

Why it cannot deadlock: held batches hold slots of the window (``max_batches_in_flight``), which
bounds them; a flush happens when the interval is up, when the window is full with batches this
pump holds (the claim loop would otherwise wait for a slot that only a flush frees) or has stayed
full for a second whoever holds it, when the held records reach the pump's ``queue_records`` (the
memory bound), in ``--once`` mode whenever the pump is idle, and at stop. So a flush carries at
most ``max_batches_in_flight - 1`` batches: raise it (and ``purge_chunk``) for larger flushes.

When a flush fails:

* the server is down (``RetriableError``): every held batch but the oldest is parked in the pump's
  Redis backlog (their slots are freed for the other pumps), and the oldest goes through the normal
  write path, which retries it with backoff and marks the pump failing meanwhile;
* the data is refused: each held batch goes through the normal write path on its own, which
  splits it down to the bad record and dead-letters only that one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from pump.errors import RetriableError
from pump.sinks.base import SinkBatch

if TYPE_CHECKING:
    from pump.delivery.batch import Batch

log = logging.getLogger(__name__)

#: Seconds between two looks at the flush conditions (the acknowledger also wakes the publisher
#: as soon as a claim has to wait for a slot of the window).
TICK = 1.0


class Publishing(Protocol):
    """A sink that can take many batches in one exactly-once write."""

    publish_interval: float

    async def write_many(self, batches: Sequence[SinkBatch]) -> dict[str, dict[int, str]]:
        """Write every batch (or raise); returns batch id → {index: reason} of records refused."""
        ...


def publish_interval(sink: Any) -> float:
    """The sink's ``publish_interval`` in seconds, 0 when it publishes every batch."""
    interval = getattr(sink, "publish_interval", 0) or 0
    return float(interval) if hasattr(sink, "write_many") else 0.0


class Publisher:
    """Holds a pump's batches and flushes them (see the module docstring)."""

    def __init__(self, worker: Any, interval: float) -> None:
        # ``worker`` is the pump's ``PumpWorker`` (not imported: it imports this module).
        self.worker = worker
        self.interval = interval
        self.held: list[tuple[Batch, Sequence[Any]]] = []
        self.held_records = 0
        self.flushes = 0
        self._lock = asyncio.Lock()
        self._since = worker.clock.now()
        self._wake = asyncio.Event()  # the window filled, or the pump is stopping
        self._full_since: float | None = None  # when the window was first seen full
        self._task: asyncio.Task[None] | None = None  # the flush running in the background
        self._logged: float | None = None  # when "Holding batches" was last logged
        worker.acks.on_full.append(self.wake)

    def wake(self) -> None:
        self._wake.set()

    # -- holding ---------------------------------------------------------------------------------

    async def hold(self, batch: Batch, share: Sequence[Any]) -> None:
        self.held.append((batch, share))
        self.held_records += len(share)
        if len(self.held) == 1:  # the interval runs from the first batch held: none waits longer
            self._since = now = self.worker.clock.now()
            if self._logged is None or now - self._logged >= self.interval:  # at most once an interval
                self._logged = now
                log.info(
                    "Holding batches for the next aggregate flush.", extra={"pump": self.worker.name, "flush_in_s": round(self.interval)}
                )
        if self.due():
            self.start_flush()

    def start_flush(self) -> None:
        """Flush in the background (the pump takes its next batch meanwhile), unless a flush is
        running: that one flushes again when it ends, if it is due by then."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush_while_due(), name=f"pump-{self.worker.name}-flush")

    async def _flush_while_due(self) -> None:
        try:
            await self.flush()
            while self.due() and not self.worker._stopping:
                await self.flush()
        except asyncio.CancelledError:
            raise
        except Exception:  # flush() handles write errors; anything else is a bug worth a trace
            log.exception("Aggregate flush failed; its batches go back to Redis at stop or lease expiry.", extra={"pump": self.worker.name})

    def due(self) -> bool:
        """Whether to flush now (the module docstring lists the reasons)."""
        if not self.held:
            return False
        w = self.worker
        now = w.clock.now()
        if now - self._since >= self.interval or self.held_records >= w.policy.queue_records:
            return True
        if w.acks.window_full:
            # Full because of what this pump holds: flush now. Full because of others (batches
            # another publishing pump holds, that this one's conditions filtered out): flush too
            # if it stays full for a tick, or the window would stall until the longest interval.
            if len(self.held) >= max(1, w.acks.max_in_flight - 1):
                return True
            if self._full_since is None:
                self._full_since = now
            elif now - self._full_since >= TICK:
                return True
        else:
            self._full_since = None
        return w.once and not w.queue and w.busy == 0

    async def run(self) -> None:
        """The flush timer, until the pump stops (its stop makes the last flush, once no write is
        in progress: :meth:`final_flush`)."""
        w = self.worker
        while not w._stopping:
            await w.clock.sleep(TICK, self._wake)
            self._wake.clear()
            if self.due() and not w._stopping:
                self.start_flush()

    async def final_flush(self, within: float) -> None:
        """At stop, before the sink closes: write what is held, for at most ``within`` seconds.
        Cut short, the held batches are simply not finished: they go back to their lists and,
        written or not, count once (the ledger)."""
        if not self.held and (self._task is None or self._task.done()):
            return

        async def last() -> None:
            if self._task is not None:
                await asyncio.gather(self._task, return_exceptions=True)
            await self.flush()

        try:
            await asyncio.wait_for(last(), timeout=max(within, 0.1))
        except TimeoutError:
            log.warning("Stopped before the held aggregate was written; its batches go back to Redis.", extra={"pump": self.worker.name})

    # -- flushing --------------------------------------------------------------------------------

    async def flush(self) -> None:
        async with self._lock:
            items, self.held, self.held_records = self.held, [], 0
            self._since = self.worker.clock.now()
            self._full_since = None
            if not items:
                return
            w = self.worker
            batches = [SinkBatch(b.id, share, b.key.name) for b, share in items]
            try:
                rejected = await w.sink.write_many(batches)
            except RetriableError as exc:
                await self._after_outage(items, exc)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "Aggregate flush refused; writing its batches one by one to isolate the bad record.",
                    extra={"pump": w.name, "batches": len(items), "error": f"{type(exc).__name__}: {exc}"[:300]},
                )
                for batch, share in items:
                    await self._one(batch, share)
                return
            self.flushes += 1
            for batch, share in items:
                refused = rejected.get(batch.id, {})
                for i in sorted(refused):
                    await w._dead_letter(batch, [share[i]], refused[i], 1)
                w._count_success(len(share) - len(refused))
                await w.acks.finished(batch, w.name)
            log.debug("Aggregate flushed.", extra={"pump": w.name, "batches": len(items), "records": sum(len(s) for _, s in items)})

    async def _after_outage(self, items: list[tuple[Batch, Sequence[Any]]], exc: RetriableError) -> None:
        """Park all but the oldest held batch; the oldest is retried by the normal write path."""
        w = self.worker
        w._count_failure([r for _, share in items for r in share], exc)
        for batch, _ in items[1:]:
            await w.acks.park(batch, w.name)
        await self._one(*items[0])

    async def _one(self, batch: Batch, share: Sequence[Any]) -> None:
        from pump.delivery.write import Abandoned, ParkRequested

        w = self.worker
        try:
            await w._deliver(batch, share)
            await w.acks.finished(batch, w.name)
        except ParkRequested:
            await w.acks.park(batch, w.name)
        except Abandoned:
            return  # stopping: released to its list by the shutdown, nothing of it written
