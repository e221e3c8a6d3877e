"""The acknowledgement path: a batch leaves Redis only when no pump owes it anything.

A pump stops owing a batch when it has written it, dead-lettered what it could not write, or
parked its share in its own Redis backlog. Progress is recorded per pump in Redis
(``mark_done``), so if the batch comes back after a crash only the pumps that had not finished
get it again. Redis calls here are retried until they succeed: while Redis is down nothing can be
acknowledged, and nothing is lost either, because the batch is still in its processing list.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import BusyLoadingError, ClusterDownError, MasterDownError, ReadOnlyError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from pump.delivery.batch import Batch
from pump.delivery.memory import DEFAULT_MAX_MEMORY, MemoryWindow
from pump.delivery.retry import backoff
from pump.delivery.tasks import wait_tasks
from pump.source.redis_list import Claim, RedisSource, SourceKey, backlog_key
from pump.telemetry.metrics import Metrics

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Hard bound on one Redis operation, above the client's own socket timeout: whatever happens to a
#: connection, no call may wait forever (the operations are idempotent, so a retry is safe).
CALL_TIMEOUT = 120.0

#: Redis errors worth waiting out: the server is restarting, failing over or unreachable. A Redis
#: Cluster answers CLUSTERDOWN while a replica takes over a dead master's slots, TRYAGAIN during a
#: slot migration, and a replica MASTERDOWN while it has lost its master: all pass in seconds.
REDIS_TRANSIENT = (
    RedisConnectionError,
    RedisTimeoutError,
    BusyLoadingError,
    ReadOnlyError,
    ClusterDownError,
    TryAgainError,
    MasterDownError,
    OSError,
)


class RedisWaitAbandoned(Exception):
    """``until_ok`` stopped waiting for Redis because its ``stop`` event was set (shutdown)."""


#: Where redis-py's asyncio connection writes (a writer-close race surfaces from these frames).
_WRITE_PATH = ("redis/asyncio/connection.py", "asyncio/streams.py", "asyncio/selector_events.py")


async def _closed_writes_as_connection_errors(call: Callable[[], Awaitable[T]]) -> T:
    """``call()``, with redis-py's writer-close race reported as the lost connection it is.

    When a connection is closed while a command is written to it (a Cluster client drops every
    connection of a node that failed, while other tasks are mid-write on them), redis-py 8.1 lets
    ``AttributeError: 'NoneType' object has no attribute 'writelines'`` or a ``TypeError`` from
    asyncio's transport escape instead of ``ConnectionError`` (redis/redis-py#3546, #4287). Only
    those errors raised inside the write path are converted; any other stays a bug."""
    try:
        return await call()
    except (AttributeError, TypeError) as exc:
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = tb.tb_frame.f_code.co_filename.replace("\\", "/") if tb is not None else ""
        if not where.endswith(_WRITE_PATH):
            raise
        raise RedisConnectionError(f"connection closed while writing to it ({type(exc).__name__}: {exc})") from exc


async def until_ok(
    call: Callable[[], Awaitable[T]],
    what: str,
    metrics: Metrics | None = None,
    max_wait: float = 10.0,
    on_retry: Callable[[], None] | None = None,
    stop: asyncio.Event | None = None,
) -> T:
    """Run a Redis operation until it succeeds, backing off (capped at ``max_wait`` s) meanwhile.

    Every operation passed here is idempotent (claims and appends carry tokens), so repeating one
    whose reply was lost is safe. ``on_retry`` lets the claim loop show it is alive while it waits.
    With ``stop``, a failed attempt made while (or a backoff interrupted because) the event is set
    raises :class:`RedisWaitAbandoned` instead of retrying: a pump that is asked to stop while Redis is down
    must not wait for Redis to come back. Nothing is lost by giving up — whatever the call may
    have moved in Redis is under a lease and returns to its list."""
    attempt = 0
    while True:
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                result = await _closed_writes_as_connection_errors(call)
            if metrics is not None:
                metrics.redis_ok()
            return result
        except (*REDIS_TRANSIENT, TimeoutError) as exc:
            attempt += 1
            if metrics is not None:
                metrics.redis_failed(str(exc) or type(exc).__name__)
            delay = backoff(attempt, 0.2, max_wait)
            level = logging.WARNING if attempt in (1, 5) or attempt % 20 == 0 else logging.DEBUG
            log.log(
                level,
                "Redis unavailable; retrying.",
                extra={"operation": what, "attempt": attempt, "error": str(exc), "retry_in": round(delay, 2)},
            )
            if on_retry is not None:
                on_retry()
            if stop is None:
                await asyncio.sleep(delay)
                continue
            if not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
            if stop.is_set():
                raise RedisWaitAbandoned(f"{what}: stopped while Redis was unavailable ({exc})") from exc


class Acknowledger:
    """The batches this process holds, and the pumps each still waits for; talks to Redis when
    that changes. It also owns the in-flight window: at most ``max_in_flight`` gateway claims are
    held at a time, and their memory (every claim, backlog claims too) stays within ``max_memory``
    bytes (:mod:`pump.delivery.memory`); a slot and the bytes come back when the batch leaves this
    process, acknowledged, parked or returned."""

    def __init__(self, source: RedisSource, metrics: Metrics, max_in_flight: int = 4, max_memory: int = DEFAULT_MAX_MEMORY) -> None:
        self.source = source
        self.metrics = metrics
        self.batches: set[Batch] = set()
        self.acked = 0  # batches acknowledged (left Redis for good), for the shutdown summary
        self.max_in_flight = max_in_flight
        self._slots = asyncio.Semaphore(max_in_flight)
        #: Called when a claim has to wait for a slot (``pump.delivery.publish`` flushes then).
        self.on_full: list[Callable[[], None]] = []
        self.memory = MemoryWindow(max_memory)
        self._costs: dict[str, int] = {}  # claim token → bytes charged to the memory window

    # -- the in-flight window --------------------------------------------------------------------

    @property
    def window_full(self) -> bool:
        return self._slots.locked() or self.memory.full

    def hold(self, claim: Claim) -> None:
        """A claim arrived: charge its bytes to the memory window until it leaves the process."""
        if claim.token not in self._costs:
            self._costs[claim.token] = self.memory.hold(claim.key.name, claim.raws)

    async def reserve(self, stop: asyncio.Event) -> bool:
        """Wait for a free slot for the next claim; False if ``stop`` is set first (batches whose
        pumps wait for Redis or for a slow sink hold the slots: a stop must not wait for them)."""
        if not self._slots.locked():
            await self._slots.acquire()
            return True
        for notify in self.on_full:
            notify()
        acquire = asyncio.ensure_future(self._slots.acquire())
        if await wait_tasks([acquire], None, stop):
            acquire.cancel()
            await asyncio.wait({acquire})
            if not acquire.cancelled():
                self._slots.release()  # it was granted just before the cancel
            return False
        return True

    def unreserve(self) -> None:
        """The claim a slot was reserved for came back empty (or was abandoned)."""
        self._slots.release()

    # -- batches ---------------------------------------------------------------------------------

    def track(self, batch: Batch) -> None:
        """``batch`` is now held by this process (with the slot reserved for it, if it has one)."""
        self.batches.add(batch)

    async def finished(self, batch: Batch, pump: str) -> None:
        """``pump`` is done with ``batch``; acknowledge the batch if it was the last one."""
        if pump not in batch.pending:
            return
        batch.pending.discard(pump)
        if batch.pending:
            await until_ok(lambda: self.source.mark_done(batch.claim, pump), "mark_done", self.metrics)
        else:
            await self.ack(batch)

    async def ack(self, batch: Batch) -> None:
        await until_ok(lambda: self.source.ack(batch.claim), "ack", self.metrics)
        self.acked += 1
        self.metrics.batch_seconds.observe(time.monotonic() - batch.claim.claimed_at)
        self.metrics.last_ack.set_to_current_time()
        self._forget(batch)

    async def park(self, batch: Batch, pump: str) -> None:
        """Move ``pump``'s share of ``batch`` into its own Redis backlog, then release the batch
        from it: the other pumps need not wait for a pump that is full or failing."""
        backlog = pump_backlog(self.source.namespace, pump, batch.key.wire)
        n = await until_ok(lambda: self.source.park(backlog, batch.id, batch.raws), "park", self.metrics)
        self.metrics.records_parked.labels(pump).inc(len(batch.raws))
        log.debug("Parked a batch in a pump's backlog.", extra={"pump": pump, "batch_id": batch.id, "records": n})
        await self.finished(batch, pump)

    async def release_all(self, within: float = 10.0) -> int:
        """Shutdown: give every unfinished batch back to the head of its list; returns the records
        returned. Tries for at most ``within`` seconds: with Redis down, the batches still held
        (:attr:`batches`) are returned when their lease expires, by any pump, or at once when this
        instance starts again (``RedisSource.adopt_own``) — nothing is lost by not waiting."""
        total = 0
        # newest first: each goes to the head of its list, so the oldest ends up first, as claimed
        newest_first = sorted(self.batches, key=lambda b: b.claim.claimed_at, reverse=True)
        try:
            async with asyncio.timeout(within):
                for batch in newest_first:
                    n = await until_ok(lambda b=batch: self.source.release(b.claim), "release", self.metrics, max_wait=2)  # type: ignore[misc]
                    total += max(n, 0)
                    self.metrics.records_requeued.labels("shutdown").inc(max(n, 0))
                    self._forget(batch)
        except TimeoutError:
            log.warning(
                "Could not return every unfinished batch to Redis; they return when their lease expires or when this pump restarts.",
                extra={"batches": len(self.batches), "error": self.metrics.redis_error or "timed out"},
            )
        return total

    def _forget(self, batch: Batch) -> None:
        """The batch has left this process: its slot is free for the next claim."""
        cost = self._costs.pop(batch.claim.token, None)
        if cost is not None:
            self.memory.release(cost)
        if batch in self.batches:
            self.batches.discard(batch)
            if batch.holds_slot:
                batch.holds_slot = False
                self._slots.release()


def pump_backlog(namespace: str, pump: str, wire: str) -> SourceKey:
    """A pump's backlog for one wire format (payloads are parked as they arrived, so their
    record ids never change)."""
    key = backlog_key(namespace, pump)
    if wire == "msgpack":
        return key
    return SourceKey(f"{key.name}:{wire}", wire, namespace, key.targets)


def pump_backlogs(namespace: str, pump: str) -> list[SourceKey]:
    return [pump_backlog(namespace, pump, wire) for wire in ("msgpack", "protobuf", "uptime")]
