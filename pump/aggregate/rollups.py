"""Summary tables at every granularity (issue 13 item 4, WSO2's ``_MINUTES`` … ``_YEARS`` tables).

An aggregate pump's opt-in ``rollups:`` list names granularities — ``minute``, ``hour``, ``day``,
``month``, ``year`` — and each becomes one more table (SQL) or collection (Mongo) holding Tyk's
aggregate rows/documents with that bucket, written in the same exactly-once unit as the pump's
main aggregate (the same SQL transaction and ledger; the same per-document Mongo ledger).

Unlike Tyk's main aggregate, where an org's whole batch joins the bucket of its first record,
a rollup puts each record in the bucket its own timestamp falls in (the batch is split by bucket
first), so a rollup row is exactly "the events of that minute/hour/day/month/year". Buckets are
in the record's zone (the pump's ``TZ``), like ``tyk_aggregated``'s hours.

Pure: the row and aggregate builders here do no I/O; the sinks own retention (SQL ``DELETE``
of rows older than ``retention_days``, Mongo TTL index of ``ttl`` seconds on ``timestamp``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from pump.aggregate.buckets import Bucketer
from pump.aggregate.engine import aggregate_records
from pump.aggregate.model import OrgAggregate
from pump.aggregate.sql_rows import AGGREGATE_TABLE, AggregateRow, aggregate_rows, merge_row
from pump.config.model import StrictModel
from pump.record import Record

Granularity = Literal["minute", "hour", "day", "month", "year"]
#: The granularities, finest first (the order tables are written in).
GRANULARITIES: tuple[str, ...] = ("minute", "hour", "day", "month", "year")
#: Seconds in one bucket (a month and a year at their longest), for checks of ``ttl``.
BUCKET_SECONDS: dict[str, int] = {"minute": 60, "hour": 3600, "day": 86400, "month": 31 * 86400, "year": 366 * 86400}
#: Mongo collection of one granularity (all orgs, like Tyk's mixed collection; never an org
#: collection name, which all start with ``z_tyk_analyticz_aggregate_``).
MONGO_ROLLUP_PREFIX = "tyk_analytics_aggregates_"


def _minute(ts: datetime) -> datetime:
    return ts.replace(second=0, microsecond=0)


def _hour(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def _day(ts: datetime) -> datetime:
    return ts.replace(hour=0, minute=0, second=0, microsecond=0)


def _month(ts: datetime) -> datetime:
    return ts.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _year(ts: datetime) -> datetime:
    return ts.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)


#: Granularity → the start of the bucket a time falls in (in the time's own zone).
FLOOR: dict[str, Bucketer] = {"minute": _minute, "hour": _hour, "day": _day, "month": _month, "year": _year}


class _Rollup(StrictModel):
    granularity: Granularity

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: Any) -> Any:
        """``- day`` is short for ``- {granularity: day}``."""
        return {"granularity": data} if isinstance(data, str) else data


class SqlRollup(_Rollup):
    """One ``rollups:`` entry of ``sql_aggregate``."""

    retention_days: int = Field(0, ge=0, le=100_000, description="delete rows whose bucket is older than this many days; 0 = keep")


class MongoRollup(_Rollup):
    """One ``rollups:`` entry of ``mongo-pump-aggregate``."""

    ttl: int = Field(0, ge=0, le=100 * 366 * 86400, description="seconds after its bucket starts a document expires (TTL index); 0 = keep")

    @model_validator(mode="after")
    def _ttl_covers_bucket(self) -> MongoRollup:
        if self.ttl and self.ttl < BUCKET_SECONDS[self.granularity]:
            raise ValueError(
                f"ttl {self.ttl} s is shorter than one {self.granularity} ({BUCKET_SECONDS[self.granularity]} s): "
                "documents would expire while still being written; use a longer ttl or 0"
            )
        return self


def check_unique(rollups: Sequence[_Rollup]) -> None:
    """A granularity listed twice is a config error (which retention would win?)."""
    seen: set[str] = set()
    for r in rollups:
        if r.granularity in seen:
            raise ValueError(f"granularity {r.granularity!r} is listed twice; list each once")
        seen.add(r.granularity)


def ordered(rollups: Sequence[_Rollup]) -> list[str]:
    """The granularities of ``rollups``, finest first."""
    wanted = {r.granularity for r in rollups}
    return [g for g in GRANULARITIES if g in wanted]


def sql_table(granularity: str) -> str:
    """``tyk_aggregated_<granularity>`` (never a shard name: those end in 8 digits)."""
    return f"{AGGREGATE_TABLE}_{granularity}"


def mongo_collection(granularity: str) -> str:
    """``tyk_analytics_aggregates_<granularity>``."""
    return MONGO_ROLLUP_PREFIX + granularity


def by_bucket(records: Sequence[Record], floor: Bucketer) -> Iterator[tuple[datetime, list[Record]]]:
    """The records grouped by the bucket their own timestamp falls in (first-seen bucket order,
    record order kept within a bucket)."""
    groups: dict[datetime, list[Record]] = {}
    for rec in records:
        key = floor(rec.timestamp)
        group = groups.get(key)
        if group is None:
            groups[key] = [rec]
        else:
            group.append(rec)
    yield from groups.items()


AggregateOptions = dict[str, Any]


def rollup_aggregates(records: Sequence[Record], granularity: str, options: AggregateOptions) -> list[OrgAggregate]:
    """Every (org, bucket) aggregate of a batch at ``granularity``; ``options`` are the keyword
    arguments of :func:`~pump.aggregate.engine.aggregate_records` (paths, tag prefixes, extra
    dimensions)."""
    return all_rollup_aggregates(records, [granularity], options)[granularity]


def all_rollup_aggregates(
    records: Sequence[Record], granularities: Sequence[str], options: AggregateOptions
) -> dict[str, list[OrgAggregate]]:
    """:func:`rollup_aggregates` for several granularities, aggregating the records as few times
    as the data allows: when a granularity splits the batch into as many buckets as the next finer
    one did (a coarser bucket is a union of finer ones, so then the groups are the same — the
    usual case, as a batch spans seconds), its aggregates are the finer ones with the coarser
    bucket, not a second pass over the records."""
    out: dict[str, list[OrgAggregate]] = {}
    previous: tuple[int, list[tuple[datetime, list[OrgAggregate]]]] | None = None
    for granularity in sorted(granularities, key=GRANULARITIES.index):
        floor = FLOOR[granularity]
        groups = list(by_bucket(records, floor))
        if previous is not None and previous[0] == len(groups):
            per_bucket = [(floor(bucket), [replace(a, timestamp=floor(bucket)) for a in aggs]) for bucket, aggs in previous[1]]
        else:
            per_bucket = [(bucket, list(aggregate_records(group, floor, **options).values())) for bucket, group in groups]
        out[granularity] = [a for _, aggs in per_bucket for a in aggs]
        previous = (len(groups), per_bucket)
    return out


def rollup_rows(
    records: Sequence[Record],
    granularities: Sequence[str],
    options: AggregateOptions,
    keep: Callable[[dict[str, list[AggregateRow]]], dict[str, list[AggregateRow]]] = lambda t: t,
) -> dict[str, list[AggregateRow]]:
    """``{tyk_aggregated_<granularity>: rows}`` for a batch, each table's rows unique by id and
    sorted by id (like :func:`~pump.aggregate.sql_rows.build_rows`); ``keep`` filters the
    dimensions (``ignore_aggregations``)."""
    tables: dict[str, list[AggregateRow]] = {}
    aggregates = all_rollup_aggregates(records, granularities, options)
    for granularity in granularities:
        merged: dict[str, AggregateRow] = {}
        for agg in aggregates[granularity]:
            for row in aggregate_rows(agg):
                old = merged.get(row.id)
                merged[row.id] = row if old is None else merge_row(old, row)
        if merged:
            tables[sql_table(granularity)] = [merged[k] for k in sorted(merged)]
    return keep(tables)
