"""Dead-letter lists: records that could not be decoded, and records a pump gave up on.

:class:`DeadLetters` is the one writer of these lists (the claim loop's undecodable payloads and
every pump's give-ups go through it); the rest of this module reads them for ``pump deadletter``.
Each entry is a JSON document with the reason, the time, the attempts and the original payload
(base64), so a person can see why and ``pump deadletter replay`` can send it again once the
cause is fixed. Keys: ``<namespace>:deadletter:<pump>`` and ``<namespace>:deadletter:undecodable``.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

from pump.delivery.ack import until_ok
from pump.errors import EX_USAGE, CommandError
from pump.redact import scrub
from pump.source.redis_list import Claim, RedisSource
from pump.telemetry.metrics import Metrics

UNDECODABLE = "undecodable"


def deadletter_key(namespace: str, pump: str) -> str:
    return f"{namespace}:deadletter:{pump}"


@dataclass(frozen=True, slots=True)
class Entry:
    pump: str
    reason: str
    source: str
    wire: str
    batch_id: str
    attempts: int
    payload: bytes
    record_id: str = ""
    time: str = ""

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "record_id": self.record_id,
                "pump": self.pump,
                "reason": self.reason,
                "time": self.time or datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
                "attempts": self.attempts,
                "source": self.source,
                "wire": self.wire,
                "batch_id": self.batch_id,
                "payload": base64.b64encode(self.payload).decode(),
            }
        )

    @staticmethod
    def decode(raw: bytes | str) -> Entry:
        doc: dict[str, Any] = orjson.loads(raw)
        return Entry(
            pump=doc.get("pump", ""),
            reason=doc.get("reason", ""),
            source=doc.get("source", ""),
            wire=doc.get("wire", "msgpack"),
            batch_id=doc.get("batch_id", ""),
            attempts=int(doc.get("attempts", 0)),
            payload=base64.b64decode(doc.get("payload", "")),
            record_id=doc.get("record_id", ""),
            time=doc.get("time", ""),
        )


class Letter(NamedTuple):
    """One record to dead-letter: its original payload, why, and its id (empty if undecodable)."""

    payload: bytes
    reason: str
    record_id: str = ""


class DeadLetters:
    """Appends entries to ``<namespace>:deadletter:<pump>``, exactly once per batch and part: a
    retried append (Redis answered, the reply was lost) or a batch redelivered after a crash adds
    nothing, because the guard names the batch, the pump and the part."""

    def __init__(self, source: RedisSource, metrics: Metrics) -> None:
        self.source = source
        self.metrics = metrics

    async def write(self, pump: str, claim: Claim, letters: Sequence[Letter], attempts: int) -> str:
        """Dead-letter ``letters`` of ``claim`` for ``pump`` (or :data:`UNDECODABLE`); returns the
        list's key. Reasons are scrubbed: they are kept in Redis and shown by ``pump deadletter``.
        Waits for Redis as long as it takes: the records are safe in their claim meanwhile."""
        key = deadletter_key(self.source.namespace, pump)
        if not letters:
            return key
        entries: list[bytes | str] = [
            Entry(pump, scrub(r), claim.key.name, claim.key.wire, claim.batch_id, attempts, payload, rid).encode()
            for payload, r, rid in letters
        ]
        first = letters[0].record_id
        guard = f"{claim.batch_id}:{pump}" + (f":{first}:{len(letters)}" if first else "")
        await until_ok(lambda: self.source.append_once(key, guard, entries), "dead-letter", self.metrics)
        return key


# --- `pump deadletter list | replay | purge` -----------------------------------------------------


def deadletter_names(config: Any) -> list[str]:
    """The names ``--pump`` accepts: the configured pumps, the uptime pump when one is configured,
    and ``undecodable``."""
    from pump.uptime import UPTIME_PUMP, uptime_kind

    names = list(config.pumps)
    if uptime_kind(config) is not None:
        names.append(UPTIME_PUMP)
    return [*names, UNDECODABLE]


async def run_deadletter(config: Any, action: str, pump: str | None, limit: int) -> int:
    """Inspect, re-inject or delete dead-lettered records.

    ``replay`` sends a pump's entries back to that pump only (through its backlog, so the other
    pumps do not get them twice); undecodable payloads go back to the gateway list they came
    from, for a pump whose decoder has since been fixed. ``pump`` must name a configured pump
    (or ``undecodable``): a typo is an error, not an empty list.
    """
    import secrets

    from pump.delivery.ack import pump_backlog
    from pump.source.connect import connect
    from pump.source.redis_list import RedisSource

    if pump:
        known = deadletter_names(config)
        if pump not in known:
            raise CommandError(
                f"no pump named {pump!r}; --pump takes one of: {', '.join(known)} "
                "(without --pump: every dead-letter list in Redis, those of removed pumps too)",
                EX_USAGE,
            )
    ns = config.delivery.namespace
    redis = connect(config.analytics_storage_config)
    try:
        if pump:
            keys = [deadletter_key(ns, pump)]
        else:
            found = [k.decode() if isinstance(k, bytes) else k async for k in redis.scan_iter(match=deadletter_key(ns, "*"))]
            keys = sorted(k for k in found if ":g:" not in k)
        if not keys:
            print("No dead-letter lists.")
            return 0
        source = RedisSource(redis, ns, config.delivery.instance_id, config.delivery.lease_seconds)
        for key in keys:
            name = key.rsplit(":", 1)[-1]
            total = int(await redis.llen(key))
            if action == "list":
                print(f"{key}: {total} entr{'y' if total == 1 else 'ies'}")
                for raw in await redis.lrange(key, max(0, total - limit), -1) if total else []:
                    e = Entry.decode(raw)
                    print(f"  {e.time}  {e.record_id or '-':32}  attempts={e.attempts}  from={e.source}\n      {scrub(e.reason)}")
            elif action == "purge":
                await redis.delete(key)
                print(f"{key}: purged {total} entries")
            elif action == "replay" and total:
                entries = [Entry.decode(raw) for raw in await redis.lrange(key, 0, total - 1)]
                if name == UNDECODABLE:
                    async with redis.pipeline(transaction=False) as pipe:
                        for e in entries:
                            pipe.rpush(e.source, e.payload)
                        await pipe.execute()
                else:
                    by_wire: dict[str, list[bytes]] = {}
                    for e in entries:
                        by_wire.setdefault(e.wire, []).append(e.payload)
                    for wire, raws in by_wire.items():
                        await source.park(pump_backlog(ns, name, wire), f"replay-{secrets.token_hex(8)}", raws)
                await redis.ltrim(key, total, -1)
                print(f"{key}: replayed {total} entries to {'their source lists' if name == UNDECODABLE else f'pump {name}'}")
        return 0
    finally:
        await redis.aclose()
