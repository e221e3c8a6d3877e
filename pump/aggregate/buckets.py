"""Which time bucket an org's aggregate belongs to, and Mongo's self-healing arithmetic (§3.1, §3.4).

Tyk keeps the Mongo "last document timestamp" in a process-wide map keyed by ``mongo_url``. Here it
is an explicit :class:`BucketClock` object owned by whoever writes to that database, so tests and
several pumps in one process cannot leak state into each other by accident. A sink that wants Tyk's
sharing (two Mongo aggregate pumps on the same ``mongo_url`` use one clock) can share one instance.

Buckets are computed in the record's own time zone (the pump's local zone after decoding), which is
what makes Tyk's hour buckets local-time hours.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from pump.gotime import ZERO_TIME

#: ``aggregation_time`` that means "one bucket per clock hour".
HOURLY = 60

#: Substrings of the three "document too large" errors that trigger self-healing (§3.4):
#: MongoDB's 16 MB limit, CosmosDB, DocumentDB.
SIZE_ERROR_MARKERS: tuple[str, ...] = (
    "Size must be between 0 and",
    "Request size is too large",
    "Resulting document after update is larger than",
    "BSON document too large",  # pymongo refuses before sending (codes 10334/17419/17420)
)

Bucketer = Callable[[datetime], datetime]


def hour_floor(ts: datetime) -> datetime:
    """Start of the clock hour of ``ts`` in its own zone (aggregation 60, SQL hourly)."""
    return ts.replace(minute=0, second=0, microsecond=0)


def minute_floor(ts: datetime) -> datetime:
    """Start of the minute of ``ts`` (SQL per-minute, and every new Mongo sub-hour bucket)."""
    return ts.replace(second=0, microsecond=0)


def sql_bucketer(per_minute: bool) -> Bucketer:
    """The SQL aggregate's bucket: minute floor if ``store_analytics_per_minute``, else hour floor.

    SQL has no clock: Tyk passes an empty identifier, so any aggregation below 60 is a plain
    minute floor.
    """
    return minute_floor if per_minute else hour_floor


def effective_aggregation_time(store_per_minute: bool, aggregation_time: int | None) -> int:
    """Mongo aggregate's ``aggregation_time`` after Tyk's normalisation.

    ``store_analytics_per_minute`` wins and means 1; otherwise anything outside 1..60 (including
    unset) silently becomes 60.
    """
    if store_per_minute:
        return 1
    if aggregation_time is None or not 1 <= aggregation_time <= HOURLY:
        return HOURLY
    return aggregation_time


class BucketClock:
    """Mongo aggregate buckets of ``aggregation_time`` minutes (Tyk's ``setAggregateTimestamp``).

    With 60 the bucket is the hour floor and the clock is not consulted. Below 60 the clock
    remembers the start of the current bucket (``last``); a record earlier than
    ``last + aggregation_time`` joins it, otherwise a new bucket starts at the record's minute.
    The clock is shared by all orgs, exactly as in Tyk; a sink should seed it at start-up from the
    newest document of the mixed collection (``last=``) and :meth:`reset` it when self-healing.
    """

    __slots__ = ("_last", "aggregation_time")

    def __init__(self, aggregation_time: int = HOURLY, last: datetime | None = None) -> None:
        self.aggregation_time = aggregation_time
        self._last: datetime | None = None
        self.seed(last)

    @property
    def last(self) -> datetime | None:
        """Start of the current sub-hour bucket, or None before the first one."""
        return self._last

    def seed(self, last: datetime | None) -> None:
        """Set the current bucket start (e.g. the newest stored document's ``timestamp``).

        Go's zero time counts as "unset", as in Tyk, so a reset persisted that way is harmless.
        """
        self._last = None if last is None or last == ZERO_TIME else last

    def reset(self) -> None:
        """Forget the current bucket so the next record opens a new one at its own minute."""
        self._last = None

    def bucket_for(self, ts: datetime) -> datetime:
        """The bucket a record with timestamp ``ts`` belongs to (may advance the clock)."""
        if self.aggregation_time == HOURLY:
            return hour_floor(ts)
        last = self._last
        if last is None:
            last = self._last = minute_floor(ts)
        # Add and compare as absolute instants (Go semantics): Python adds to and compares
        # datetimes sharing a tzinfo by wall clock, which is off by an hour across a DST change.
        if last.astimezone(UTC) + timedelta(minutes=self.aggregation_time) > ts.astimezone(UTC):
            return last
        last = self._last = minute_floor(ts)
        return last

    __call__ = bucket_for

    def __repr__(self) -> str:
        return f"BucketClock(aggregation_time={self.aggregation_time}, last={self._last!r})"


def is_size_error(message: str) -> bool:
    """True if a write error is one of the "aggregate document too large" errors."""
    return any(marker in message for marker in SIZE_ERROR_MARKERS)


def should_self_heal(message: str, *, enabled: bool, aggregation_time: int) -> bool:
    """Whether a failed Mongo aggregate write should be retried with smaller buckets.

    Only for size errors, only when ``enable_aggregate_self_healing`` is on, and only while the
    buckets can still shrink (``aggregation_time > 1``; at 1 the error is returned).
    """
    return enabled and aggregation_time > 1 and is_size_error(message)


def halve_aggregation_time(aggregation_time: int) -> int:
    """Next, smaller ``aggregation_time`` for self-healing: integer half, never below 1."""
    return max(1, aggregation_time // 2)
