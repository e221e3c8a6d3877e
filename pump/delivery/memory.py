"""The memory budget of the in-flight window: claims are sized and paused by bytes, not records.

A count of batches bounds nothing when records vary from 800 bytes to megabytes (raw request and
response bodies) or ``purge_chunk`` is 50,000. So every claimed batch this process holds is
charged its estimated memory, :func:`cost_of`, and a claim is sent only when the budget
(``delivery.max_memory``) has room for it:

* its size in records is the room left divided by the cost of one record of that list, as the
  list's last claim measured it (a list never seen is assumed to hold big records,
  :data:`UNKNOWN_RECORD_COST`), so a claim fits the room it was given; a list whose records
  suddenly grow overshoots once, by one claim at most;
* while the budget is full, claims wait for a batch to leave the process (acknowledged, parked or
  returned);
* when nothing is held, one claim always proceeds, whatever its size: a single batch larger than
  the budget (one huge record, or a returned batch that must come back whole) is taken alone and
  cannot deadlock the loop.

The estimate is calibrated on peak RSS, not on Python objects alone. Traced with tracemalloc, a
claimed record holds its payload twice (the msgpack bytes are kept for parking and dead letters;
the decoded strings are about as long as the encoded ones) plus ~1.1 KiB of objects: decoded =
2.3 × payload for an 830-byte record, 1.01 × payload for 128 KB bodies. Peak RSS (``scripts/bench
--max-memory``, dummy pump) grows faster than that — by 1.4× the object estimate for 1 KB records
and 2.7× with 64 KB bodies (the Redis client's reply buffer, allocator fragmentation) — so a
record is charged four times its payload plus 1 KiB, and ``max_memory`` reads as roughly the
RSS the records take above the ~50 MB of an idle pump.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from pump.delivery.tasks import wait_tasks

#: Bytes of Python objects per decoded record beyond its payload (measured: ~1,100).
RECORD_OVERHEAD = 1024
#: Bytes of RSS per payload byte of a claimed record (module docstring).
PAYLOAD_FACTOR = 4
#: What a record of a list never claimed yet is assumed to cost: its first claim is sized as if
#: every record carried 64 KB of raw bodies (the default budget split between 2 workers: 192 records), so even then
#: it stays within the budget; later claims use the list's measured size.
UNKNOWN_RECORD_COST = 256 << 10
#: The default budget (``delivery.max_memory``), the whole pump's: ``pump run --workers N`` splits
#: it between the workers (pump/supervisor.py). Chosen so that the default pump on 2 CPUs (a
#: supervisor and 2 workers, ~150 MB idle) peaks well under 300 MB whatever the backlog, even with
#: 64 KB raw bodies (measured 64 KB bodies: ~1.45 MB of RSS per MiB of budget; README, Memory).
DEFAULT_MAX_MEMORY = 96 << 20


def cost_of(raws: Sequence[bytes]) -> int:
    """Estimated bytes a claimed batch holds once decoded (module docstring)."""
    return PAYLOAD_FACTOR * sum(map(len, raws)) + RECORD_OVERHEAD * len(raws)


class MemoryWindow:
    """Bytes held by claimed batches (``used``) plus bytes reserved for claims on their way."""

    def __init__(self, budget: int = DEFAULT_MAX_MEMORY) -> None:
        self.budget = budget
        self.used = 0
        self.peak = 0  # the most ever charged at once (tests and the shutdown summary)
        self._per_record: dict[str, int] = {}  # list name → cost of one record, last measured
        self._freed = asyncio.Event()
        self._blocked = False  # a claim found no room for one record; until something is freed

    @property
    def full(self) -> bool:
        """No claim can proceed: the budget is used up, or the room left is smaller than one
        record of the list a claim wanted. The second case matters to whoever holds batches until
        the window is full (an aggregate pump's scheduled flush, pump/delivery/publish.py): with
        a small budget, or a budget split between workers, the room left is often a few records
        short of the budget, and a flush that waited for ``used >= budget`` would never come."""
        return self.used >= self.budget or self._blocked

    def per_record(self, key: str) -> int | None:
        return self._per_record.get(key)

    def size_claim(self, key: str, wanted: int) -> tuple[int, int] | None:
        """(records to claim, bytes to reserve) for the next claim of ``key``, or None if the
        budget has no room for one record of it while something is held."""
        per = self._per_record.get(key) or UNKNOWN_RECORD_COST
        count = min(wanted, (self.budget - self.used) // per)
        if count < 1:
            if self.used > 0:
                self._blocked = True
                return None
            return 1, self.budget  # nothing held: one claim always proceeds, alone
        return count, count * per

    async def reserve(self, key: str, wanted: int, stop: asyncio.Event) -> tuple[int, int] | None:
        """Wait until the budget has room for a claim of ``key``; (records, reserved bytes), or
        None if ``stop`` is set first."""
        while (sized := self.size_claim(key, wanted)) is None:
            if stop.is_set():
                return None
            self._freed.clear()
            freed = asyncio.ensure_future(self._freed.wait())
            if await wait_tasks([freed], None, stop):
                freed.cancel()
                return None
        count, reserved = sized
        self._charge(reserved)
        return count, reserved

    def unreserve(self, reserved: int) -> None:
        self.release(reserved)

    def hold(self, key: str, raws: Sequence[bytes]) -> int:
        """A claim arrived: charge its real cost and learn the list's record size; returns the
        cost (released with :meth:`release` when the batch leaves the process)."""
        cost = cost_of(raws)
        if raws:
            self._per_record[key] = -(-cost // len(raws))
        self._charge(cost)
        return cost

    def release(self, amount: int) -> None:
        self.used -= amount
        self._blocked = False
        self._freed.set()

    def _charge(self, amount: int) -> None:
        self.used += amount
        self.peak = max(self.peak, self.used)
