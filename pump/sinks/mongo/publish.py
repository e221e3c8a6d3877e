"""``mongo-pump-aggregate``'s ``write_many`` for ``publish_interval`` (``pump.delivery.publish``):
the batches held since the last flush become one update per document instead of one per batch.

Each batch is planned as :meth:`~pump.sinks.mongo.aggregate.MongoAggregateSink.write` plans it
(in batch order, so the bucket clock moves as it would); the aggregates bound for the same
document (collection, org, bucket) are merged (:func:`pump.aggregate.merge.merge_aggregates`,
the step-1 update's rules, so the document ends as if the batches had been written one by one,
but for Tyk's ``lists.*.requesttime``, the average before the write: it lags a flush, not a batch)
and written with all their batch ids in its ``_pump_applied`` ledger. A document that already
records some of the ids (a flush that got part-way before a crash, redelivered grouped
differently) gets only the other batches' share. Anything unusual — an org whose collection name
is refused, a document too large — is refused as data, so the publisher writes the batches one
by one through ``write`` (which dead-letters and self-heals).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from pump.aggregate import collection_names
from pump.aggregate.merge import merge_aggregates
from pump.aggregate.model import OrgAggregate
from pump.errors import BatchDataError, RetriableError, SinkError
from pump.sinks.base import SinkBatch
from pump.sinks.mongo import rollups as rollup_docs
from pump.sinks.mongo.client import AGGREGATE_INDEXES, IndexSpec
from pump.sinks.mongo.config import database_name
from pump.sinks.mongo.errors import collection_name_problem, map_error
from pump.sinks.mongo.upsert import LEDGER_FIELD, AggregateTooLarge, lineage

#: ``sink`` below is the ``MongoAggregateSink`` (typed ``Any``: that module imports this one).
Target = tuple[str, str, object]  # collection, org, bucket
Parts = list[tuple[str, OrgAggregate]]  # (batch id, aggregate), in batch order


async def write_many(sink: Any, batches: Sequence[SinkBatch]) -> dict[str, dict[int, str]]:
    batches = [b for b in batches if b.records]
    targets: dict[Target, Parts] = {}
    indexes: dict[str, tuple[IndexSpec, ...]] = {}
    database = database_name(sink.meta.mongo_url.get_secret_value())
    for batch in batches:
        plan = sink._plan(batch.id, batch.records)
        for org, agg in plan.aggregates.items():
            for name in collection_names(org, sink.meta.use_mixed_collection):
                problem = collection_name_problem(database, name)
                if problem:
                    raise BatchDataError(f"mongo-pump-aggregate: {problem}")
                targets.setdefault((name, org, agg.timestamp), []).append((batch.id, agg))
                indexes[name] = AGGREGATE_INDEXES
        for unit in plan.rollups:
            rollup = next(r for r in sink.meta.rollups if unit.collection.endswith("_" + r.granularity))
            targets.setdefault((unit.collection, unit.aggregate.org_id, unit.aggregate.timestamp), []).append((batch.id, unit.aggregate))
            indexes[unit.collection] = rollup_docs.indexes(rollup)
    for name, specs in indexes.items():
        await sink.target.prepare(name, specs)
    results = await asyncio.gather(*(_write(sink, name, parts) for (name, _, _), parts in targets.items()), return_exceptions=True)
    for result in results:
        if isinstance(result, asyncio.CancelledError):
            raise result
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        raise failures[0]
    for batch in batches:
        sink.plans.pop(batch.id, None)
    return {}


async def _write(sink: Any, name: str, parts: Parts) -> None:
    """One document's share of the flush: merged, written with every batch id it holds; parts
    the document already recorded are dropped and the rest written again."""
    collection = sink.target.collection(name)
    for _ in range(len(parts) + 1):
        merged = merge_aggregates([agg for _, agg in parts])
        try:
            result = await sink.writer.write_ids(collection, merged, [b for b, _ in parts])
        except AggregateTooLarge as exc:
            raise BatchDataError(str(exc)) from exc
        except SinkError:
            raise
        except Exception as exc:
            raise map_error(exc, f"aggregate upsert into {name[:80]}", sink.target.where) from exc
        if result.applied or result.doc is None:
            sink._after_write(merged.org_id, name, result)
            return
        have = set(result.doc.get(LEDGER_FIELD) or ())
        parts = [(b, agg) for b, agg in parts if not set(lineage(b)) & have]
        if not parts:
            return
    raise RetriableError(f"aggregate document in {name[:80]} kept changing under concurrent writers; will retry")
