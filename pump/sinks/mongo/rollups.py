"""``mongo-pump-aggregate``'s ``rollups:`` collections — ``tyk_analytics_aggregates_<granularity>``.

One collection per granularity holds every org's documents (filtered by ``orgid``, like Tyk's
mixed collection ``tyk_analytics_aggregates``), one document per org and bucket, in Tyk's
aggregate document shape. Each is written by the same :class:`~pump.sinks.mongo.upsert.
AggregateWriter` as the org collections, so its ``_pump_applied`` ledger makes it exactly-once
per document. Retention is a TTL index on ``timestamp`` (the bucket start) with
``expireAfterSeconds = ttl``; without ``ttl`` documents are kept. Changing ``ttl`` later needs a
``collMod`` of the index (the pump leaves an existing index alone, as Tyk does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pump.aggregate import discard_aggregations
from pump.aggregate.model import OrgAggregate
from pump.aggregate.rollups import MongoRollup, all_rollup_aggregates, mongo_collection, ordered
from pump.record import Record
from pump.sinks.mongo.client import IndexSpec, by_key


@dataclass(frozen=True, slots=True)
class Unit:
    """One rollup document to write: its key in the plan's ``done`` set, collection, aggregate."""

    key: str
    collection: str
    aggregate: OrgAggregate


def indexes(rollup: MongoRollup) -> tuple[IndexSpec, ...]:
    """``orgid`` and ``timestamp``; the latter a TTL index when the rollup has a ``ttl``."""
    stamp = IndexSpec((("timestamp", 1),), ttl=True, expire_after=rollup.ttl) if rollup.ttl else by_key("timestamp")
    return (by_key("orgid"), stamp)


def units(records: Sequence[Record], rollups: Sequence[MongoRollup], options: dict[str, Any], ignore: Sequence[str]) -> list[Unit]:
    """Every rollup document a batch adds to, finest granularity first."""
    out: list[Unit] = []
    granularities = ordered(rollups)
    aggregates = all_rollup_aggregates(records, granularities, options)
    for granularity in granularities:
        name = mongo_collection(granularity)
        for agg in aggregates[granularity]:
            if ignore:
                agg = discard_aggregations(agg, ignore)
            out.append(Unit(f"{agg.org_id}|{agg.timestamp.isoformat()}", name, agg))
    return out
