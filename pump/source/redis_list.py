"""Claim, acknowledge, park and reclaim batches of records on Redis lists.

Tyk Pump reads with ``LRANGE``+``LTRIM`` and the records are gone before any sink has them
(tyk-pump.md §1.5). Here a batch moves atomically into a processing list owned by this instance
under a lease (``scripts.CLAIM``) and is deleted only when every pump has it (``ack``). A batch
whose owner died goes back to the head of its list, in order, when its lease expires
(``reap``); a restarted instance returns its own unfinished batches at once (``adopt_own``).
The scripts' docstring describes the keys.

This module knows nothing about sinks: it hands out :class:`Claim` objects and is told when a
pump has finished one.

Every pipeline is used as ``async with``: redis-py keeps a pipeline's connection when a command
fails before its own cleanup runs (the ``SCRIPT EXISTS`` check a pipeline with a Lua script sends
first), and a pipeline dropped in that state is reported by asyncio as "Unclosed Pipeline
client" with its socket leaked. Leaving the block always resets it and returns the connection.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.exceptions import NoScriptError

from pump.source import scripts
from pump.source.keys import BASE_LIST, UPTIME_LIST, SourceKey, backlog_key, gateway_lists, hash_tag

log = logging.getLogger(__name__)

AnyRedis = Redis | RedisCluster


@dataclass(slots=True)
class Claim:
    """A batch this instance owns until it acknowledges or returns it."""

    key: SourceKey
    token: str
    batch_id: str
    member: str
    raws: list[bytes]
    done: set[str] = field(default_factory=set)
    claimed_at: float = field(default_factory=time.monotonic)


class RedisSource:
    """The claim/ack protocol for any number of lists on one Redis (or Redis Cluster)."""

    def __init__(
        self,
        redis: AnyRedis,
        namespace: str,
        instance_id: str,
        lease_seconds: float,
        wait_replicas: int | None = None,
        wait_timeout: float = 1.0,
    ) -> None:
        self.redis = redis
        self.namespace = namespace
        self.instance_id = instance_id
        self.lease_ms = int(lease_seconds * 1000)
        #: replicas that must have a claim before its records go to any sink (see :meth:`claim`)
        self.wait_replicas = replica_default(redis) if wait_replicas is None else wait_replicas
        self.wait_timeout_ms = max(1, int(wait_timeout * 1000))
        self._wait_paused_until = 0.0
        self.inflight: dict[str, Claim] = {}  # token → claim
        self._token = secrets.token_hex(4)
        self._claim = redis.register_script(scripts.CLAIM)
        self._ack = redis.register_script(scripts.ACK)
        self._mark_done = redis.register_script(scripts.MARK_DONE)
        self._requeue = redis.register_script(scripts.REQUEUE)
        self._park = redis.register_script(scripts.PARK)
        self._append_once = redis.register_script(scripts.APPEND_ONCE)

    # -- instance registration -----------------------------------------------------------------

    @property
    def instance_key(self) -> str:
        return f"{self.namespace}:instance:{self.instance_id}"

    async def register(self) -> bool:
        """Claim the instance id. Returns True if a previous incarnation of this instance died
        without cleaning up (its batches are then returned at once by :meth:`adopt_own`).

        Raises RuntimeError if another live process on this host uses the same instance id:
        two processes sharing an id would return each other's batches.
        """
        me = {"host": socket.gethostname(), "pid": os.getpid(), "token": self._token}
        ttl = max(self.lease_ms, 2000)
        if await self.redis.set(self.instance_key, json.dumps(me), nx=True, px=ttl):
            return False
        raw = await self.redis.get(self.instance_key)
        other = json.loads(raw) if raw else {}
        if other.get("token") != self._token and other.get("host") == me["host"]:
            pid = int(other.get("pid", 0))
            if pid != me["pid"] and _pid_alive(pid):
                raise RuntimeError(
                    f"another pump process (pid {pid}) on this host uses instance_id {self.instance_id!r}; "
                    "give each process its own delivery.instance_id"
                )
        elif other.get("host") not in (None, me["host"]):
            raise RuntimeError(
                f"instance_id {self.instance_id!r} is in use by a pump on host {other.get('host')!r}; give each "
                f"pump its own delivery.instance_id (or wait {self.lease_ms // 1000} s if that pump is gone)"
            )
        await self.redis.set(self.instance_key, json.dumps(me), px=ttl)
        return True

    async def heartbeat(self) -> int:
        """Renew the instance key and every lease in flight; return how many leases were lost
        (reaped by another instance because this one stalled past its lease)."""
        deadline = _now_ms() + self.lease_ms
        claims = list(self.inflight.values())
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(
                self.instance_key,
                json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "token": self._token}),
                px=max(self.lease_ms, 2000),
            )
            for c in claims:
                pipe.zadd(c.key.leases, {c.member: deadline}, xx=True, ch=True)
            results = await pipe.execute()
        lost = 0
        for c, changed in zip(claims, results[1:], strict=True):
            if changed or c.token not in self.inflight:
                continue  # renewed, or acknowledged while the renewal was on its way
            if await self.redis.zscore(c.key.leases, c.member) is None and c.token in self.inflight:
                lost += 1
                log.warning(
                    "Lease lost: another instance returned this batch to its list.", extra={"batch_id": c.batch_id, "source": c.key.name}
                )
        return lost

    async def unregister(self) -> None:
        raw = await self.redis.get(self.instance_key)
        if raw and json.loads(raw).get("token") == self._token:
            await self.redis.delete(self.instance_key)

    # -- claim / ack -----------------------------------------------------------------------------

    @staticmethod
    def new_token() -> str:
        return secrets.token_hex(8)

    async def claim(self, key: SourceKey, count: int, token: str | None = None) -> Claim | None:
        """Move up to ``count`` records (or exactly one returned batch) into a processing list.

        Pass the same ``token`` when repeating a claim whose reply was lost: the batch already
        moved under that token is returned instead of a second one being claimed.

        With ``wait_replicas`` the claim is followed by ``WAIT`` on the same connection: Redis
        replicates asynchronously, and a claim the promoted replica never saw would put its
        records back in the list after a failover, to be claimed again under a new batch id
        (raw rows are deduplicated by record id, but an aggregate would count them twice)."""
        token = token or self.new_token()
        member = f"{self.instance_id}|{token}"
        keys = [key.name, key.leases, key.marks, key.batches, key.proc(token)]
        args: list[int | str] = [count, token, member, _now_ms() + self.lease_ms]
        wait = self.wait_replicas if time.monotonic() >= self._wait_paused_until else 0
        if isinstance(self.redis, RedisCluster):
            (batch_id, taken), raws, *acked = await self._claim_on_cluster(self.redis, key, keys, args, wait)
        else:
            async with self.redis.pipeline(transaction=False) as pipe:  # always reset: see module docstring
                await self._claim(keys=keys, args=args, client=pipe)  # sent with the LRANGE
                pipe.lrange(key.proc(token), 0, -1)
                if wait:
                    pipe.execute_command("WAIT", wait, self.wait_timeout_ms)
                (batch_id, taken), raws, *acked = await pipe.execute()
        if wait and taken:
            self._replicated(int(acked[0]), wait)
        if not taken:
            return None
        batch_id = batch_id.decode() if isinstance(batch_id, bytes) else str(batch_id)
        done = await self.redis.hkeys(key.done(batch_id)) if batch_id != token else []
        claim = Claim(key, token, batch_id, member, list(raws), {d.decode() if isinstance(d, bytes) else d for d in done})
        self.inflight[token] = claim
        return claim

    async def _claim_on_cluster(self, rc: RedisCluster, key: SourceKey, keys: list[str], args: list[int | str], wait: int) -> list[Any]:
        """The claim script, the LRANGE and the optional WAIT in one round trip to the list's node.

        redis-py's cluster pipeline refuses its ``evalsha`` method but sends the raw command,
        grouping commands by node: every key here is in the list's slot, and WAIT is addressed to
        that node, so all three share one connection (which WAIT needs: it counts that
        connection's writes). A node that lost its script cache (restart, failover) gets it loaded
        and the claim repeated with the same token, which returns the same batch."""
        await rc.initialize()  # a no-op once the client knows the slots
        for attempt in (1, 2):
            node = rc.get_node_from_key(key.name)
            async with rc.pipeline(transaction=False) as pipe:
                pipe.execute_command("EVALSHA", self._claim.sha, len(keys), *keys, *args)
                pipe.execute_command("LRANGE", key.proc(str(args[1])), 0, -1)
                if wait:
                    pipe.execute_command("WAIT", wait, self.wait_timeout_ms, target_nodes=node)
                results: list[Any] = await pipe.execute(raise_on_error=False)
            if attempt == 1 and isinstance(results[0], NoScriptError):
                await rc.script_load(scripts.CLAIM)
                continue
            if wait and isinstance(results[-1], Exception):  # WAIT re-routed by a MOVED: not counted
                results[-1] = 0
            for result in results:
                if isinstance(result, Exception):
                    raise result
            return results
        raise AssertionError("unreachable")  # pragma: no cover

    def _replicated(self, acked: int, wanted: int) -> None:
        """Stop waiting for replicas for a while when they do not answer (none left after a
        failover, or one far behind): each claim would otherwise cost the whole timeout."""
        if acked >= wanted:
            return
        self._wait_paused_until = time.monotonic() + _WAIT_PAUSE_SECONDS
        log.warning(
            "Fewer Redis replicas than wanted acknowledged a claim; a failover now could hand those records out "
            f"again under a new batch id. Not waiting for replicas for {_WAIT_PAUSE_SECONDS:.0f} s.",
            extra={"acknowledged": acked, "wanted": wanted, "setting": "delivery.wait_replicas"},
        )

    async def mark_done(self, claim: Claim, pump: str) -> None:
        """Record durably that ``pump`` has finished this batch (skipped if it comes back)."""
        claim.done.add(pump)
        await self._mark_done(keys=[claim.key.proc(claim.token), claim.key.done(claim.batch_id)], args=[pump])

    async def ack(self, claim: Claim) -> None:
        """Every pump has the batch: delete it from Redis for good."""
        await self._ack(
            keys=[claim.key.leases, claim.key.batches, claim.key.proc(claim.token), claim.key.done(claim.batch_id)],
            args=[claim.member, claim.token],
        )
        self.inflight.pop(claim.token, None)

    async def release(self, claim: Claim) -> int:
        """Give an unfinished batch back to the head of its list now (shutdown, or lost interest)."""
        n = await self._requeue_member(claim.key, claim.member, force=True)
        self.inflight.pop(claim.token, None)
        return n

    async def _requeue_member(self, key: SourceKey, member: str, force: bool) -> int:
        token = member.rsplit("|", 1)[-1]
        batch_id = await self.redis.hget(key.batches, token)
        batch_id = batch_id.decode() if isinstance(batch_id, bytes) else (batch_id or token)
        return int(
            await self._requeue(
                keys=[key.name, key.leases, key.marks, key.batches, key.proc(token), key.done(batch_id)],
                args=[member, token, _now_ms(), "1" if force else "0"],
            )
        )

    async def reap(self, keys: Iterable[SourceKey], limit: int = 100) -> int:
        """Return batches whose lease expired (their instance died or stalled) to their lists."""
        total = 0
        now = _now_ms()
        mine = {c.member for c in self.inflight.values()}
        for key in keys:
            expired = await self.redis.zrangebyscore(key.leases, "-inf", now, start=0, num=limit)
            for raw in expired:
                member = raw.decode() if isinstance(raw, bytes) else str(raw)
                if member in mine:
                    continue
                n = await self._requeue_member(key, member, force=False)
                if n > 0:
                    total += n
                    log.warning(
                        "Returned an abandoned batch to its list.",
                        extra={"source": key.name, "owner": member.split("|", 1)[0], "records": n},
                    )
        return total

    async def adopt_own(self, keys: Iterable[SourceKey]) -> int:
        """At start: return every batch a previous incarnation of this instance left claimed."""
        total = 0
        prefix = f"{self.instance_id}|"
        for key in keys:
            async for item in self.redis.zscan_iter(key.leases, match=_glob_escape(prefix) + "*"):
                raw = item[0] if isinstance(item, tuple | list) else item
                member = raw.decode() if isinstance(raw, bytes) else str(raw)
                total += max(0, await self._requeue_member(key, member, force=True))
        if total:
            log.info("Returned batches left claimed by this instance's previous run.", extra={"records": total})
        return total

    # -- parking and dead letters ----------------------------------------------------------------

    async def park(self, backlog: SourceKey, batch_id: str, raws: list[bytes]) -> int:
        """Append one batch's records to a pump's backlog as a marked chunk (idempotent)."""
        if not raws:
            return 0
        return int(
            await self._park(
                keys=[backlog.name, backlog.marks, f"{backlog.tag}:g:{batch_id}"],
                args=[batch_id, *raws],
            )
        )

    async def append_once(self, key: str, guard_id: str, entries: list[bytes | str]) -> int:
        """Append entries to a list once per ``guard_id`` (a retried call adds nothing)."""
        if not entries:
            return 0
        guard = f"{hash_tag(key)}:{self.namespace}:g:{guard_id}"
        return int(await self._append_once(keys=[key, guard], args=entries))

    async def lengths(self, names: list[str]) -> list[int]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.llen(name)
            return [int(n) for n in await pipe.execute()]

    def oldest_age(self) -> float:
        """Seconds since the oldest batch still in flight was claimed (0 when none)."""
        if not self.inflight:
            return 0.0
        return time.monotonic() - min(c.claimed_at for c in self.inflight.values())


_WAIT_PAUSE_SECONDS = 30.0


def replica_default(redis: AnyRedis) -> int:
    """Replicas a claim waits for by default: one behind Sentinel (the replica it would promote),
    none otherwise (a single Redis has none; many clusters have none: set it for one that has)."""
    return 1 if isinstance(getattr(redis, "connection_pool", None), SentinelConnectionPool) else 0


def _now_ms() -> int:
    return int(time.time() * 1000)


def _pid_alive(pid: int) -> bool:
    """The process exists and is not a zombie: a pump SIGKILLed a moment ago (its workers, with
    their supervisor) stays a zombie until its new parent reaps it, and a pump restarted at once
    must not take that for a live process using its instance id."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True  # no /proc: the signal said it exists


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


__all__ = [
    "BASE_LIST",
    "UPTIME_LIST",
    "Claim",
    "RedisSource",
    "SourceKey",
    "backlog_key",
    "gateway_lists",
    "hash_tag",
]
