"""The claim loop: claim a batch, decode it, offer every pump its view, repeat while there is
backlog, then wait ``purge_delay``.

Two parts, both flowing one way (source → fan-out → pump workers):

* :class:`Intake` turns a claim into a :class:`~pump.delivery.batch.Batch`: it claims from a
  list, decodes, dead-letters what is not a Tyk record, and hands the batch to the acknowledger
  to track. The claim loop uses it for the gateway lists; an idle pump uses it, as its
  ``Backlog``, to take the next batch of its own Redis backlog.
* :class:`Fanout` is the loop. Lists are visited round-robin, one batch each per round, so one
  busy list cannot starve the others. At most ``max_batches_in_flight`` claimed batches wait for
  acknowledgement at a time (the acknowledger's window): the bound on memory, whatever the size
  of the backlog in Redis.

A payload that is not a Tyk record is dead-lettered with the decoder's reason, counted, and
logged at ERROR like every dead letter; it never stops the loop and never reaches a sink.

Once :meth:`Fanout.stop` is called, a claim that is waiting for Redis gives up instead of waiting
for it to come back: a stop must be prompt whatever state Redis is in.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from pump.decode import DECODERS
from pump.delivery.ack import Acknowledger, RedisWaitAbandoned, until_ok
from pump.delivery.batch import Batch
from pump.delivery.deadletter import UNDECODABLE, DeadLetters, Letter
from pump.delivery.worker import PumpWorker
from pump.errors import DecodeError
from pump.source.redis_list import Claim, RedisSource, SourceKey
from pump.telemetry.metrics import Metrics
from pump.telemetry.purgelog import PurgeLog

log = logging.getLogger(__name__)


def decode_all(wire: str, raws: Sequence[bytes]) -> tuple[list[Any], list[bytes], list[tuple[bytes, str]]]:
    """Decode payloads: (records, their payloads, [(bad payload, reason)]). Never raises.

    Per batch, not per record: the cyclic garbage collector is paused while a batch decodes.
    Records hold no reference cycles, but each is a tracked container, and collections triggered
    every few hundred allocations while a claim's records pile up cost more than decoding them
    (``scripts/bench`` row ``decode-batch``: 78,000 → 182,000 records per CPU-second). The common batch,
    where every payload decodes, is one list comprehension; a batch with a bad payload is
    decoded again one by one to sort the good from the bad."""
    decoder = DECODERS[wire]
    collecting = gc.isenabled()
    gc.disable()
    try:
        try:
            return [decoder(raw) for raw in raws], list(raws), []
        except Exception:  # sorted out payload by payload below
            pass
        records: list[Any] = []
        good: list[bytes] = []
        bad: list[tuple[bytes, str]] = []
        for raw in raws:
            try:
                records.append(decoder(raw))
                good.append(raw)
            except DecodeError as exc:
                bad.append((raw, str(exc)))
            except Exception as exc:  # hostile bytes must never take the loop down
                bad.append((raw, f"{type(exc).__name__}: {exc}"))
        return records, good, bad
    finally:
        if collecting:
            gc.enable()


class Intake:
    """Claim → decode → a tracked :class:`Batch` (module docstring).

    ``pumps`` are the pumps that exist; ``analytics_pumps`` those a gateway list without
    ``targets`` goes to. A batch's pending pumps are its targets minus those that finished it
    before (a batch that came back after a crash)."""

    def __init__(
        self,
        source: RedisSource,
        acks: Acknowledger,
        dead_letters: DeadLetters,
        metrics: Metrics,
        claim_size: int,
        pumps: frozenset[str],
        analytics_pumps: frozenset[str],
    ) -> None:
        self.source = source
        self.acks = acks
        self.dead_letters = dead_letters
        self.metrics = metrics
        self.claim_size = claim_size
        self.pumps = pumps
        self.analytics_pumps = analytics_pumps
        self.stopped = asyncio.Event()  # set by stop(): Redis waits of claims give up
        self.undecodable = 0  # payloads dead-lettered as undecodable by this process

    def stop(self) -> None:
        self.stopped.set()

    async def claim(
        self, key: SourceKey, on_retry: Callable[[], None] | None = None, count: int | None = None, reserved: int = 0
    ) -> Claim | None:
        """Claim the next batch of ``key`` (``count`` records at most, default ``claim_size``);
        None if it is empty or a stop came while Redis was unavailable (whatever a lost reply may
        have moved returns with its lease). The claim's bytes are charged to the memory window in
        place of the ``reserved`` estimate."""
        token = self.source.new_token()  # one token for every retry: a lost reply is not a lost batch
        n = count or self.claim_size
        try:
            claim = await until_ok(lambda: self.source.claim(key, n, token), "claim", self.metrics, on_retry=on_retry, stop=self.stopped)
        except RedisWaitAbandoned:
            claim = None
        finally:
            self.acks.memory.unreserve(reserved)
        if claim is not None:
            self.acks.hold(claim)
        return claim

    async def open(self, claim: Claim, holds_slot: bool = False) -> Batch | None:
        """Decode a claimed batch and track it; None (and the batch acknowledged) when no pump
        owes it anything — every pump finished it before, or nothing in it decoded."""
        key = claim.key
        self.metrics.records_claimed.labels(key.name).inc(len(claim.raws))
        self.metrics.batches_claimed.labels(key.name).inc()
        records, raws, bad = decode_all(key.wire, claim.raws)
        self.metrics.records_decoded.labels(key.name).inc(len(records))
        if bad and UNDECODABLE not in claim.done:
            await self._dead_letter_undecodable(claim, bad)
        targets = key.targets if key.targets is not None else self.analytics_pumps
        pending = {p for p in targets if p in self.pumps and p not in claim.done}
        batch = Batch(claim, records, raws, pending, holds_slot=holds_slot)
        self.acks.track(batch)
        if not pending or not records:
            await self.acks.ack(batch)
            return None
        return batch

    async def claim_backlog(self, keys: Sequence[SourceKey]) -> Batch | None:
        """An idle pump's next batch from its own backlog (``keys``, one per wire format); None
        if the backlog is empty or the loop is stopping. Backlog batches take no in-flight slot:
        the pump takes one only when it has room for it."""
        for key in keys:
            while not self.stopped.is_set() and (sized := self.acks.memory.size_claim(key.name, self.claim_size)) is not None:
                if (claim := await self.claim(key, count=sized[0])) is None:
                    break
                batch = await self.open(claim)
                if batch is not None:
                    return batch
        return None

    async def _dead_letter_undecodable(self, claim: Claim, bad: list[tuple[bytes, str]]) -> None:
        dlq = await self.dead_letters.write(UNDECODABLE, claim, [Letter(raw, reason) for raw, reason in bad], 0)
        claim.done.add(UNDECODABLE)
        self.metrics.records_undecodable.labels(claim.key.name).inc(len(bad))
        self.undecodable += len(bad)
        log.error(
            "Payloads that are not Tyk records were dead-lettered.",
            extra={"source": claim.key.name, "records": len(bad), "first_reason": bad[0][1][:200], "list": dlq},
        )


class Fanout:
    def __init__(
        self,
        intake: Intake,
        keys: list[SourceKey],
        workers: dict[str, PumpWorker],
        acks: Acknowledger,
        metrics: Metrics,
        purge_delay: float,
        once: bool = False,
    ) -> None:
        self.intake = intake
        self.source = intake.source
        self.keys = keys
        self.workers = workers
        self.acks = acks
        self.metrics = metrics
        self.claim_size = intake.claim_size
        self.purge_delay = purge_delay
        self.poll_interval = 0.2 if once else purge_delay
        self.once = once
        self.stopping = False
        self._wake = asyncio.Event()
        self.last_tick = time.monotonic()
        #: The per-purge INFO line (pump/telemetry/purgelog.py); None in tests that do not want it.
        self.purge_log: PurgeLog | None = None

    @property
    def undecodable(self) -> int:
        return self.intake.undecodable

    # -- the loop --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Drain the lists round-robin until they are empty, sleep, repeat (``--once``: one pass)."""
        while not self.stopping:
            started = time.monotonic()
            await self.drain()
            self.tick()
            if self.purge_log is not None:
                self.purge_log.after_cycle(time.monotonic() - started)
            if self.once or self.stopping:
                return
            wait = max(0.0, self.purge_delay - (time.monotonic() - started))
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=wait)
            except TimeoutError:
                pass

    def tick(self) -> None:
        self.last_tick = time.monotonic()
        self.metrics.last_tick.set_to_current_time()

    def stop(self) -> None:
        self.stopping = True
        self.intake.stop()
        self._wake.set()
        for w in self.workers.values():
            w.close_intake()  # a dispatch waiting for room in a full pump parks its share instead

    async def drain(self) -> None:
        """Visit the lists round-robin; a list whose claim came back full is visited again after
        the others, one that came back short is done for this tick.

        The next claim is sent before the current batch is decoded, so Redis prepares it on its
        own core while this process decodes: in steady state claims cost no waiting."""
        to_visit = deque(self.keys)
        pending: asyncio.Task[tuple[Claim | None, int]] | None = None
        pending_key: SourceKey | None = None
        try:
            while (to_visit or pending) and not self.stopping:
                if pending is None:
                    pending_key = to_visit.popleft()
                    pending = await self._start_claim(pending_key)
                    if pending is None:
                        return  # stopped while waiting for a slot
                key, (claim, asked) = pending_key, await pending
                pending = None
                # Full, or a returned batch (claimed whole, whatever its size): the list may hold more.
                if claim is not None and (len(claim.raws) >= asked or claim.batch_id != claim.token):
                    to_visit.append(key)  # type: ignore[arg-type]
                if to_visit and not self.stopping and not self.acks.window_full and self._has_room(to_visit[0]):
                    pending_key = to_visit.popleft()
                    pending = await self._start_claim(pending_key)
                if claim is not None:
                    await self._open_and_dispatch(claim)
        finally:
            if pending is not None:
                claim, _ = await pending
                if claim is not None:
                    await self._open_and_dispatch(claim)

    def _has_room(self, key: SourceKey) -> bool:
        """Can the next claim of ``key`` be sent now, without waiting for memory? (A claim sent
        ahead must never wait: the batch it overtakes is not dispatched yet and holds memory.)"""
        return self.acks.memory.size_claim(key.name, self.claim_size) is not None

    async def _start_claim(self, key: SourceKey) -> asyncio.Task[tuple[Claim | None, int]] | None:
        """Reserve an in-flight slot and the claim's bytes, and send a claim for ``key`` without
        waiting for it; None if the loop is stopped while the window is full."""
        if not await self.acks.reserve(self.intake.stopped):
            return None
        sized = await self.acks.memory.reserve(key.name, self.claim_size, self.intake.stopped)
        if sized is None:
            self.acks.unreserve()
            return None
        return asyncio.create_task(self._claim(key, *sized))

    async def _claim(self, key: SourceKey, count: int, reserved: int) -> tuple[Claim | None, int]:
        """Claim up to ``count`` records of ``key``: (the claim, ``count``)."""
        claim = await self.intake.claim(key, on_retry=self.tick, count=count, reserved=reserved)
        self.tick()
        if claim is None:
            self.acks.unreserve()
        return claim, count

    async def _open_and_dispatch(self, claim: Claim) -> None:
        batch = await self.intake.open(claim, holds_slot=True)
        if batch is not None:
            await self.dispatch(batch)

    async def dispatch(self, batch: Batch) -> None:
        """Hand each pump that owes ``batch`` its share. A full pump waits for room (backpressure
        on this loop) unless that would hold up another pump of the batch that has room: then,
        with ``when_full: park``, its share is parked (:meth:`_others_have_room`)."""
        for name in sorted(batch.pending):
            await self.workers[name].offer(batch, park_if_full=partial(self._others_have_room, batch, name))

    def _others_have_room(self, batch: Batch, pump: str) -> bool:
        """Would waiting for ``pump`` hold up another pump that owes ``batch``? Yes if one of them
        is healthy and not backed up (under half its queue): it would soon run out of work."""
        return any(name != pump and w.has_room_to_spare for name, w in self.workers.items() if name in batch.pending)

    # -- --once ----------------------------------------------------------------------------------

    async def settle(self) -> None:
        """Wait until every claimed batch is acknowledged and every healthy pump has emptied its
        backlog (the end of ``pump run --once``)."""
        while True:
            if not self.acks.batches and all(w.idle for w in self.workers.values()):
                healthy = [w for w in self.workers.values() if not w.failing]
                names = [k.name for w in healthy for k in w.backlogs]
                lengths = await until_ok(lambda n=names: self.source.lengths(n), "llen", self.metrics) if names else []  # type: ignore[misc]
                if not any(lengths):
                    return
                for w in healthy:
                    w.poke()
            await asyncio.sleep(0.05)
