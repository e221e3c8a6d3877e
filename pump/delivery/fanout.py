"""The claim loop: claim a batch, decode it, offer every pump its view, repeat while there is
backlog, then wait ``purge_delay``.

Lists are visited round-robin, one batch each per round, so one busy list cannot starve the
others. At most ``max_batches_in_flight`` claimed batches wait for acknowledgement at a time: the
bound on memory, whatever the size of the backlog in Redis.

A payload that is not a Tyk record is dead-lettered with the decoder's reason, counted, and
logged at ERROR like every dead letter; it never stops the loop and never reaches a sink.

Once :meth:`Fanout.stop` is called, a claim that is waiting for Redis gives up instead of waiting
for it to come back: a stop must be prompt whatever state Redis is in.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from pump.decode import DECODERS
from pump.delivery.ack import Acknowledger, Batch, RedisWaitAbandoned, until_ok
from pump.delivery.deadletter import UNDECODABLE, Entry, deadletter_key
from pump.delivery.tasks import wait_tasks
from pump.delivery.worker import PumpWorker
from pump.errors import DecodeError
from pump.source.redis_list import Claim, RedisSource, SourceKey
from pump.telemetry.metrics import Metrics

log = logging.getLogger(__name__)


def decode_all(wire: str, raws: Sequence[bytes]) -> tuple[list[Any], list[bytes], list[tuple[bytes, str]]]:
    """Decode payloads: (records, their payloads, [(bad payload, reason)]). Never raises."""
    decoder = DECODERS[wire]
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


class Fanout:
    def __init__(
        self,
        source: RedisSource,
        keys: list[SourceKey],
        workers: dict[str, PumpWorker],
        analytics_pumps: frozenset[str],
        acks: Acknowledger,
        metrics: Metrics,
        claim_size: int,
        max_in_flight: int,
        purge_delay: float,
        once: bool = False,
    ) -> None:
        self.source = source
        self.keys = keys
        self.workers = workers
        self.analytics_pumps = analytics_pumps
        self.metrics = metrics
        self.claim_size = claim_size
        self.purge_delay = purge_delay
        self.poll_interval = 0.2 if once else purge_delay
        self.once = once
        self.stopping = False
        self._stopped = asyncio.Event()  # set by stop(): Redis waits of the loop give up
        self._slots = asyncio.Semaphore(max_in_flight)
        self._slot_holders: set[str] = set()
        self._wake = asyncio.Event()
        self.acks = acks
        acks.on_released = self._release_slot
        self.last_tick = time.monotonic()
        self.undecodable = 0  # payloads dead-lettered as undecodable by this process
        for w in workers.values():
            w.fanout = self

    def _release_slot(self, batch: Batch) -> None:
        if batch.claim.token in self._slot_holders:
            self._slot_holders.discard(batch.claim.token)
            self._slots.release()

    # -- the loop --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Drain the lists round-robin until they are empty, sleep, repeat (``--once``: one pass)."""
        while not self.stopping:
            started = time.monotonic()
            await self.drain()
            self.tick()
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
        self._stopped.set()
        self._wake.set()
        for w in self.workers.values():
            w.wake_intake()  # a dispatch waiting for room in a full pump parks its share instead

    async def drain(self) -> None:
        """Visit the lists round-robin; a list whose claim came back full is visited again after
        the others, one that came back short is done for this tick.

        The next claim is sent before the current batch is decoded, so Redis prepares it on its
        own core while this process decodes: in steady state claims cost no waiting."""
        to_visit = deque(self.keys)
        pending: asyncio.Task[Claim | None] | None = None
        pending_key: SourceKey | None = None
        try:
            while (to_visit or pending) and not self.stopping:
                if pending is None:
                    pending_key = to_visit.popleft()
                    pending = await self._start_claim(pending_key)
                    if pending is None:
                        return  # stopped while waiting for a slot
                key, claim = pending_key, await pending
                pending = None
                if claim is not None and len(claim.raws) >= self.claim_size:
                    to_visit.append(key)  # type: ignore[arg-type]
                if to_visit and not self.stopping and not self._slots.locked():
                    pending_key = to_visit.popleft()
                    pending = await self._start_claim(pending_key)
                if claim is not None:
                    await self.dispatch(claim)
        finally:
            if pending is not None:
                claim = await pending
                if claim is not None:
                    await self.dispatch(claim)

    async def _start_claim(self, key: SourceKey) -> asyncio.Task[Claim | None] | None:
        """Reserve an in-flight slot and send a claim for ``key`` without waiting for it; None if
        the loop is stopped while every slot is taken (batches whose pumps wait for Redis or for
        a slow sink hold them: a stop must not wait for those)."""
        if self._slots.locked():
            acquire = asyncio.ensure_future(self._slots.acquire())
            if await wait_tasks([acquire], None, self._stopped):
                acquire.cancel()
                await asyncio.wait({acquire})
                if not acquire.cancelled():
                    self._slots.release()  # it was granted just before the cancel
                return None
        else:
            await self._slots.acquire()
        return asyncio.create_task(self._claim(key))

    async def _claim(self, key: SourceKey) -> Claim | None:
        token = self.source.new_token()  # one token for every retry: a lost reply is not a lost batch
        try:
            claim = await until_ok(
                lambda: self.source.claim(key, self.claim_size, token),
                "claim",
                self.metrics,
                on_retry=self.tick,
                stop=self._stopped,
            )
        except RedisWaitAbandoned:
            claim = None  # stopping; a batch the lost reply may have moved returns with its lease
        self.tick()
        if claim is None:
            self._slots.release()
        else:
            self._slot_holders.add(claim.token)
        return claim

    async def dispatch(self, claim: Claim) -> None:
        """Decode a claimed batch and hand each pump that still owes it its share."""
        key = claim.key
        self.metrics.records_claimed.labels(key.name).inc(len(claim.raws))
        self.metrics.batches_claimed.labels(key.name).inc()
        records, raws, bad = decode_all(key.wire, claim.raws)
        self.metrics.records_decoded.labels(key.name).inc(len(records))
        if bad and UNDECODABLE not in claim.done:
            await self._dead_letter_undecodable(claim, bad)
        targets = key.targets if key.targets is not None else self.analytics_pumps
        pending = {p for p in targets if p in self.workers and p not in claim.done}
        batch = Batch(claim, records, raws, set(pending))
        self.acks.track(batch)
        if not pending or not records:
            await self.acks.ack(batch)
            return
        for name in sorted(pending):
            await self.workers[name].offer(batch)

    async def _dead_letter_undecodable(self, claim: Claim, bad: list[tuple[bytes, str]]) -> None:
        entries: list[bytes | str] = [
            Entry(UNDECODABLE, reason, claim.key.name, claim.key.wire, claim.batch_id, 0, raw).encode() for raw, reason in bad
        ]
        dlq = deadletter_key(self.source.namespace, UNDECODABLE)
        await until_ok(lambda: self.source.append_once(dlq, f"{claim.batch_id}:undecodable", entries), "dead-letter", self.metrics)
        claim.done.add(UNDECODABLE)
        self.metrics.records_undecodable.labels(claim.key.name).inc(len(bad))
        self.undecodable += len(bad)
        log.error(
            "Payloads that are not Tyk records were dead-lettered.",
            extra={"source": claim.key.name, "records": len(bad), "first_reason": bad[0][1][:200], "list": dlq},
        )

    def others_have_room(self, batch: Batch, pump: str) -> bool:
        """Would waiting for ``pump`` hold up another pump that owes ``batch``? Yes if one of them
        is healthy and not backed up (under half its queue): it would soon run out of work."""
        return any(
            name != pump and not w.failing and w.queued_records <= w.policy.queue_records // 2
            for name, w in self.workers.items()
            if name in batch.pending
        )

    async def claim_backlog(self, worker: PumpWorker) -> bool:
        """Give an idle pump the next batch from its own backlog; False if it has none."""
        for key in worker.backlogs:
            token = self.source.new_token()
            try:
                claim = await until_ok(
                    lambda k=key, t=token: self.source.claim(k, self.claim_size, t),  # type: ignore[misc]
                    "claim",
                    self.metrics,
                    stop=self._stopped,
                )
            except RedisWaitAbandoned:
                return False
            if claim is not None:
                await self.dispatch(claim)
                return True
        return False

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
