"""The delivery layer wired as the daemon wires it, on fakeredis, with a clock that never waits.

The sinks here are the unit under test's collaborators, scripted to fail in precise ways; the
Redis is fakeredis running the real claim/ack Lua scripts (it lacks ``redis.sha1hex``, which
:func:`fake_redis` adds). Nothing here sleeps: backoffs go through :class:`FakeClock`, idle
workers poll once an hour (they are woken with ``poke``), and :meth:`Rig.until` only yields to
the event loop until a condition holds.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import fakeredis
from prometheus_client import CollectorRegistry

from pump.config.model import Delivery
from pump.delivery.ack import Acknowledger
from pump.delivery.deadletter import DeadLetters, Entry, deadletter_key
from pump.delivery.fanout import Fanout, Intake
from pump.delivery.worker import PumpWorker
from pump.errors import BatchDataError
from pump.record import Record
from pump.sinks.base import SinkBatch
from pump.source.redis_list import RedisSource, SourceKey
from pump.telemetry.metrics import Metrics
from tests.helpers import msgpack_payloads

LIST = "analytics-tyk-system-analytics"
NS = "pump"
Outcome = BaseException | asyncio.Event | None


async def fake_redis() -> fakeredis.FakeAsyncRedis:
    """A fakeredis whose Lua has ``redis.sha1hex`` (the claim script compares a marker's hash)."""
    server = fakeredis.FakeServer()
    redis = fakeredis.FakeAsyncRedis(server=server)
    await redis.eval("return 1", 0)  # creates the server's Lua runtime
    server._lua_runtime.globals().redis.sha1hex = lambda data: hashlib.sha1(data).hexdigest().encode()
    return redis


class FakeClock:
    """Monotonic time that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float, wake: asyncio.Event) -> None:
        if wake.is_set():
            return
        self.sleeps.append(seconds)
        self.t += seconds
        await asyncio.sleep(0)


class ScriptedSink:
    """Writes what it is given, except as scripted.

    ``outcomes`` are used one per write, in order (``None``: succeed; an exception: raise it; an
    event: wait for it, then succeed); ``refuse`` names records the sink refuses for their content
    (``BatchDataError`` for the whole write, as a database does); ``gate``, when given, is awaited
    before every write."""

    def __init__(
        self,
        outcomes: Iterable[Outcome] = (),
        refuse: Callable[[Record], bool] = lambda r: False,
        gate: asyncio.Event | None = None,
    ) -> None:
        self.name = "scripted"
        self.outcomes: deque[Outcome] = deque(outcomes)
        self.refuse = refuse
        self.gate = gate
        self.calls: list[tuple[str, list[str]]] = []  # (batch id, paths) of every write attempt
        self.written: list[str] = []  # paths written, in order
        self.closed = 0

    async def start(self) -> None:
        return None

    async def write(self, batch: SinkBatch) -> None:
        paths = [r.path for r in batch.records]
        self.calls.append((batch.id, paths))
        if self.gate is not None:
            await self.gate.wait()
        if self.outcomes:
            outcome = self.outcomes.popleft()
            if isinstance(outcome, asyncio.Event):
                await outcome.wait()
            elif outcome is not None:
                raise outcome
        if any(self.refuse(r) for r in batch.records):
            raise BatchDataError("value out of range (test)")
        self.written.extend(paths)

    async def close(self) -> None:
        self.closed += 1

    async def check(self) -> None:
        return None


class Rig:
    """Source → intake/fan-out → one worker per sink → acknowledger, as ``pump.app`` builds it."""

    def __init__(
        self,
        redis: fakeredis.FakeAsyncRedis,
        sinks: dict[str, ScriptedSink],
        *,
        policy: Delivery | None = None,
        policies: dict[str, Delivery] | None = None,
        views: dict[str, Callable[[Sequence[Any]], Sequence[Any]]] | None = None,
        claim_size: int = 5,
        max_in_flight: int = 4,
        max_memory: int = 1 << 30,
        once: bool = False,
        once_patience: float = 10.0,
    ) -> None:
        self.redis = redis
        self.sinks = sinks
        self.clock = FakeClock()
        self.source = RedisSource(redis, NS, "test", 60)
        self.registry = CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.acks = Acknowledger(self.source, self.metrics, max_in_flight, max_memory)
        self.dead_letters = DeadLetters(self.source, self.metrics)
        names = frozenset(sinks)
        self.intake = Intake(self.source, self.acks, self.dead_letters, self.metrics, claim_size, names, names)
        policy = policy or Delivery(backoff_initial=0.5, backoff_max=30)
        self.workers = {
            name: PumpWorker(
                name,
                sink,
                (views or {}).get(name, lambda records: records),
                (policies or {}).get(name, policy),
                0,
                self.metrics,
                self.acks,
                self.dead_letters,
                NS,
                backlog=self.intake,
                poll_interval=3600,  # never by time: tests poke the workers
                once=once,
                once_patience=once_patience,
                clock=self.clock,
            )
            for name, sink in sinks.items()
        }
        self.key = SourceKey(LIST, "msgpack", NS)
        self.fanout = Fanout(self.intake, [self.key], self.workers, self.acks, self.metrics, purge_delay=0, once=True)
        self.started = False

    # -- driving ---------------------------------------------------------------------------------

    def start(self) -> Rig:
        for w in self.workers.values():
            w.start()
        self.started = True
        return self

    async def push(self, records: Sequence[Record], key: str = LIST) -> list[bytes]:
        payloads = msgpack_payloads(records)
        await self.redis.rpush(key, *payloads)
        return payloads

    async def until(self, condition: Callable[[], bool], what: str, turns: int = 20_000) -> None:
        """Yield to the loop until ``condition`` holds (no waiting on a clock)."""
        for _ in range(turns):
            if condition():
                return
            await asyncio.sleep(0)
        raise AssertionError(f"never happened: {what}")

    async def settled(self) -> None:
        """Every claimed batch acknowledged and every pump idle."""
        await self.until(lambda: not self.acks.batches and all(w.idle for w in self.workers.values()), "settled")

    async def drain(self) -> None:
        """One pass of the claim loop, then wait until everything it claimed has settled."""
        await self.fanout.drain()
        await self.settled()

    async def stop(self, grace: float = 0.0) -> int:
        """The daemon's stop sequence; returns the records given back to Redis."""
        self.fanout.stop()
        if self.started:
            await asyncio.gather(*(w.stop(time.monotonic() + grace) for w in self.workers.values()))
            self.started = False
        return await self.acks.release_all(within=2)

    # -- reading Redis ---------------------------------------------------------------------------

    async def list_len(self, key: str = LIST) -> int:
        return int(await self.redis.llen(key))

    async def backlog_len(self, pump: str) -> int:
        return int(await self.redis.llen(f"{NS}:backlog:{pump}"))

    async def dead(self, pump: str) -> list[Entry]:
        return [Entry.decode(e) for e in await self.redis.lrange(deadletter_key(NS, pump), 0, -1)]

    async def claimed_keys(self) -> list[str]:
        """Processing lists and per-pump progress hashes (of any list, backlogs too): what a batch
        in flight leaves in Redis."""
        keys = [k.decode() for k in await self.redis.keys("*")]
        return sorted(k for k in keys if f"}}:{NS}:p:" in k or f"}}:{NS}:d:" in k)

    def sample(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0
