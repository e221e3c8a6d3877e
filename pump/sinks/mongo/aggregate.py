"""``mongo-pump-aggregate``: Tyk's per-org analytics aggregates in MongoDB (tyk-pump.md §3, §3.4).

Each batch becomes one aggregate per org (``pump.aggregate.aggregate_records``), written to
``z_tyk_analyticz_aggregate_<org>`` and, with ``use_mixed_collection``, to
``tyk_analytics_aggregates`` — one document per org and time bucket, updated in Tyk's two steps:

1. ``$inc``/``$set``/``$max``/``$min`` of the counters (``as_change``), returning the merged doc;
2. averages, error lists and ``lists.*`` recomputed from that merged document (``as_time_update``).

Exactly-once under redelivery (a batch can come back after a timeout, a crash or a lease expiry):
step 1 also records the batch id in the same document, atomically with the increments —
``$push`` onto ``_pump_applied`` (the newest ``ledger_size`` ids are kept) and ``$set``
``_pump_last`` — and only matches documents whose ``_pump_applied`` holds neither the batch id nor
any of its ancestors (the delivery layer names split batches ``<id>.0``/``<id>.1`` and partial
retries ``<id>.rN``). A redelivered batch therefore finds its id and adds nothing; step 2 is
repeated only if the document's ``_pump_last`` is still this batch (a later batch's step 2 already
covered it otherwise), and is guarded the same way so a stale recomputation can never overwrite a
newer one. No transactions are needed, so this works on FerretDB, DocumentDB and CosmosDB too.

Within one process the aggregates of a batch are built once and reused on retries (the bucket
clock moves), and the orgs already written are remembered, so self-healing (``enable_aggregate_
self_healing``: a document too large → halve ``aggregation_time``, start new documents) re-runs
only the orgs not yet written — Tyk re-runs the whole batch and counts the others twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator

from pump.aggregate import (
    BucketClock,
    aggregate_records,
    collection_names,
    discard_aggregations,
    effective_aggregation_time,
    halve_aggregation_time,
    tag_count_warning,
)
from pump.aggregate.model import OrgAggregate
from pump.aggregate.mongo_parts import MAX_UPDATE_PATHS
from pump.aggregate.mongo_update import MIXED_COLLECTION, unknown_aggregation_names
from pump.aggregate.rollups import MongoRollup, check_unique
from pump.errors import BatchDataError, RejectedRecords, RetriableError, SinkError
from pump.gotime import LOCAL_ZONE
from pump.record import Record
from pump.sinks.base import SinkBatch, SinkContext
from pump.sinks.mongo import rollups as rollup_docs
from pump.sinks.mongo.client import AGGREGATE_INDEXES, MongoTarget
from pump.sinks.mongo.config import BaseMongoMeta, database_name
from pump.sinks.mongo.documents import gc_paused
from pump.sinks.mongo.errors import InvalidCollection, collection_name_problem, is_size_error, map_error
from pump.sinks.mongo.upsert import AggregateTooLarge, AggregateWriter, WriteResult, lineage
from pump.sinks.publishing import PublishInterval

log = logging.getLogger(__name__)

#: Batch plans kept for retries and for the sub-batches of a split batch.
MAX_PLANS = 256


class Meta(BaseMongoMeta):
    """Tyk's ``MongoAggregateConf`` plus ``ledger_size``."""

    use_mixed_collection: bool = Field(False, description="also write every org's aggregates to tyk_analytics_aggregates")
    track_all_paths: bool = Field(False, description="aggregate every path, not only tracked endpoints")
    ignore_tag_prefix_list: list[str] = Field(default_factory=list, description="tags starting with these are not aggregated")
    threshold_len_tag_list: int = Field(0, ge=-1, description="warn when a document holds more tags; 0 = 1000, -1 = never")
    store_analytics_per_minute: bool = Field(False, description="one document per minute (aggregation_time 1)")
    aggregation_time: int = Field(0, description="minutes per document, 1..60; anything else means 60")
    enable_aggregate_self_healing: bool = Field(False, description="on a too-large document, halve aggregation_time, start new documents")
    ignore_aggregations: list[str] = Field(default_factory=list, description="dimensions not stored, e.g. apikeys, tags")
    lists_request_time: Literal["tyk", "average"] = Field(
        "tyk",
        description="requesttime in lists.* entries: tyk = the previous write's average (0 at first), as Tyk stores it; "
        "average = the current one (not a Tyk key)",
    )
    ledger_size: int = Field(
        1000,
        ge=1,
        description="batch ids remembered per document for exactly-once delivery (not a Tyk key)",
    )
    max_update_paths: int = Field(
        MAX_UPDATE_PATHS,
        ge=50,
        le=1_000_000,
        description="operator paths per update; a larger aggregate is written in parts (not a Tyk key)",
    )
    write_timeout: float = Field(
        60,
        ge=0,
        le=3600,
        description="seconds each server call may take (on the client); a timed-out call is retried; 0 = none (not a Tyk key)",
    )
    publish_interval: PublishInterval = 0
    rollups: list[MongoRollup] = Field(
        default_factory=list,
        description="ours: also write tyk_analytics_aggregates_<granularity> (minute, hour, day, month, year), "
        "exactly once, each with an optional ttl in seconds",
    )

    @field_validator("rollups")
    @classmethod
    def _unique_rollups(cls, v: list[MongoRollup]) -> list[MongoRollup]:
        check_unique(v)
        return v


@dataclass
class Plan:
    """One batch's aggregates and progress, kept across retries of the same batch id."""

    aggregates: dict[str, OrgAggregate]
    done: set[tuple[str, str]] = field(default_factory=set)
    #: (org, collection) → counter prefixes written by the parts of this batch or an ancestor
    #: (grows as parts are applied; what sub-batches inherit).
    written: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    #: (org, collection) → counter prefixes this batch must not write (fixed when the plan is
    #: made, so its parts are the same on every retry; renewed when self-healing re-buckets).
    skip: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)
    #: org → why its collection name is refused: its records are dead-lettered, not written.
    invalid: dict[str, str] = field(default_factory=dict)
    #: ``rollups:`` documents (``pump.sinks.mongo.rollups``), written after the org aggregates.
    rollups: list[rollup_docs.Unit] = field(default_factory=list)


class MongoAggregateSink:
    def __init__(self, name: str, meta: Meta, timeout: float = 0) -> None:
        self.name = name
        self.meta = meta
        self.target = MongoTarget(meta, name, timeout)
        self.writer = AggregateWriter(
            meta.ledger_size, self.target.where, meta.max_update_paths, meta.write_timeout, meta.lists_request_time
        )
        self.clock = BucketClock(effective_aggregation_time(meta.store_analytics_per_minute, meta.aggregation_time or None))
        self.plans: OrderedDict[str, Plan] = OrderedDict()
        self.extra_dimensions: tuple[str, ...] = ()  # the pump's extra_dimensions (pump.aggregate.extra)
        self._seeded = False
        self.publish_interval: float = meta.publish_interval
        unknown = unknown_aggregation_names(meta.ignore_aggregations)
        if unknown:
            log.warning("ignore_aggregations names unknown dimensions; they are ignored.", extra={"pump": name, "names": unknown})

    @property
    def aggregation_time(self) -> int:
        return self.clock.aggregation_time

    async def start(self) -> None:
        await self.target.connect()
        if not self._seeded:
            await self._seed_clock()
            self._seeded = True

    async def _seed_clock(self) -> None:
        """Continue the newest bucket of ``tyk_analytics_aggregates``, as Tyk does at start-up, so
        a restart inside a sub-hour bucket keeps writing to the same documents."""
        try:
            doc = await self.target.collection(MIXED_COLLECTION).find_one({}, sort=[("timestamp", -1)], projection={"timestamp": 1})
        except Exception as exc:
            raise map_error(exc, "read the newest aggregate", self.target.where) from exc
        ts = doc.get("timestamp") if doc else None
        if isinstance(ts, datetime):
            self.clock.seed(ts.astimezone(LOCAL_ZONE))

    async def write(self, batch: SinkBatch) -> None:
        plan = self._plan(batch.id, batch.records)
        try:
            while True:
                try:
                    await self._apply(plan, batch.id)
                    rejected = self._rejected(plan, batch.records)
                    break
                except AggregateTooLarge as exc:
                    if not self._heal(exc):
                        raise BatchDataError(
                            f"{exc}; enable_aggregate_self_healing (or a lower aggregation_time) lets new documents take the data"
                        ) from exc
                    self._rebuild_pending(plan, batch.records)
        except (RetriableError, asyncio.CancelledError):
            raise  # the same id comes back (a cancelled write is a timeout): keep the aggregates
        except BaseException:
            plan.aggregates = {}  # the id will not come back (it is split instead); keep what is done
            raise
        self.plans.pop(batch.id, None)
        if rejected:
            raise RejectedRecords(rejected)

    async def write_many(self, batches: Sequence[SinkBatch]) -> dict[str, dict[int, str]]:
        """Several batches, one update per document (``publish_interval``): ``pump.sinks.mongo.publish``."""
        from pump.sinks.mongo.publish import write_many

        return await write_many(self, batches)

    def _rejected(self, plan: Plan, records: Sequence[Record]) -> dict[int, str]:
        """The records of orgs whose collection name was refused, with the reason."""
        if not plan.invalid:
            return {}
        log.error(
            "Org ids make invalid collection names; dead-lettering their records.",
            extra={"pump": self.name, "orgs": len(plan.invalid), "error": next(iter(plan.invalid.values()))[:300]},
        )
        return {i: f"mongo-pump-aggregate: {plan.invalid[r.org_id]}" for i, r in enumerate(records) if r.org_id in plan.invalid}

    def _plan(self, batch_id: str, records: Sequence[Record]) -> Plan:
        """The batch's plan: the cached one on a retry (same buckets even though the clock has
        moved since), else fresh aggregates. A sub-batch of a split batch inherits the
        (org, collection) pairs its ancestors finished in this process, so they are not written
        twice; the rest were never applied, so their buckets are free to follow the clock (which
        is what lets self-healing put the halves of a too-large org into separate documents)."""
        plan = self.plans.get(batch_id)
        if plan is not None and plan.aggregates:
            self.plans.move_to_end(batch_id)
            return plan
        done: set[tuple[str, str]] = set()
        written: dict[tuple[str, str], set[str]] = {}
        for earlier in lineage(batch_id):
            if earlier in self.plans:
                done |= self.plans[earlier].done
                for key, prefixes in self.plans[earlier].written.items():
                    written.setdefault(key, set()).update(prefixes)
        written = {k: v for k, v in written.items() if k not in done}
        plan = Plan(
            self._aggregate(records),
            done,
            written=written,
            skip={k: frozenset(v) for k, v in written.items()},
            rollups=self._rollups(records),
        )
        self.plans[batch_id] = plan
        while len(self.plans) > MAX_PLANS:
            self.plans.popitem(last=False)
        return plan

    def _aggregate(self, records: Sequence[Record]) -> dict[str, OrgAggregate]:
        with gc_paused():
            return self._aggregate_records(records)

    def _aggregate_records(self, records: Sequence[Record]) -> dict[str, OrgAggregate]:
        aggregates = aggregate_records(
            records,
            self.clock,
            track_all_paths=self.meta.track_all_paths,
            ignore_tag_prefixes=tuple(self.meta.ignore_tag_prefix_list),
            extra_dimensions=self.extra_dimensions,
        )
        if self.meta.ignore_aggregations:
            aggregates = {org: discard_aggregations(agg, self.meta.ignore_aggregations) for org, agg in aggregates.items()}
        return aggregates

    def _rollups(self, records: Sequence[Record]) -> list[rollup_docs.Unit]:
        if not self.meta.rollups:
            return []
        options = {
            "track_all_paths": self.meta.track_all_paths,
            "ignore_tag_prefixes": tuple(self.meta.ignore_tag_prefix_list),
            "extra_dimensions": self.extra_dimensions,
        }
        with gc_paused():
            return rollup_docs.units(records, self.meta.rollups, options, self.meta.ignore_aggregations)

    async def _apply_rollups(self, plan: Plan, batch_id: str) -> None:
        """The rollup documents, in parallel, after the org aggregates: the records of an org
        whose collection name was refused are dead-lettered, so they add to no rollup either."""
        todo = [u for u in plan.rollups if (u.key, u.collection) not in plan.done and u.aggregate.org_id not in plan.invalid]
        results = await asyncio.gather(*(self._apply_rollup(plan, u, batch_id) for u in todo), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        for failure in failures:
            if isinstance(failure, asyncio.CancelledError):
                raise failure
        if failures:
            raise failures[0]

    async def _apply_rollup(self, plan: Plan, unit: rollup_docs.Unit, batch_id: str) -> None:
        rollup = next(r for r in self.meta.rollups if unit.collection.endswith("_" + r.granularity))
        try:
            await self.target.prepare(unit.collection, rollup_docs.indexes(rollup))
            result = await self.writer.write(self.target.collection(unit.collection), unit.aggregate, batch_id)
        except AggregateTooLarge as exc:
            raise BatchDataError(
                f"{exc}; a {rollup.granularity} rollup document cannot be split (ignore_aggregations can shrink it)"
            ) from exc
        except SinkError:
            raise
        except Exception as exc:
            raise map_error(exc, f"rollup upsert into {unit.collection}", self.target.where) from exc
        plan.done.add((unit.key, unit.collection))
        self._after_write(unit.aggregate.org_id, unit.collection, result)

    async def _apply(self, plan: Plan, batch_id: str) -> None:
        """Write every org's aggregate; orgs in parallel (their documents are independent), each
        org's collections in Tyk's order. The first failure is raised once the others finished,
        so everything that could be written is recorded in ``plan.done``."""
        results = await asyncio.gather(
            *(self._apply_org(plan, org, agg, batch_id) for org, agg in plan.aggregates.items()),
            return_exceptions=True,
        )
        failures = []
        for org, result in zip(plan.aggregates, results, strict=True):
            if isinstance(result, InvalidCollection):
                plan.invalid[org] = str(result)
            elif isinstance(result, BaseException):
                failures.append(result)
        for failure in failures:
            if isinstance(failure, asyncio.CancelledError):
                raise failure
        if failures:  # a size problem first: self-healing can fix it, the others are retried anyway
            raise next((f for f in failures if isinstance(f, AggregateTooLarge)), failures[0])
        if plan.rollups:
            await self._apply_rollups(plan, batch_id)

    async def _apply_org(self, plan: Plan, org: str, agg: OrgAggregate, batch_id: str) -> None:
        """One org's aggregate into its collections, org collection first. A name refused (before
        any I/O where possible, else by the server) raises :class:`InvalidCollection` before the
        mixed collection is touched, so the org's records are either stored or dead-lettered."""
        if org in plan.invalid:
            return
        database = database_name(self.meta.mongo_url.get_secret_value())
        for name in collection_names(org, self.meta.use_mixed_collection):
            problem = collection_name_problem(database, name)
            if problem:
                raise InvalidCollection(problem)
        for name in collection_names(org, self.meta.use_mixed_collection):
            if (org, name) in plan.done:
                continue
            try:
                await self.target.prepare(name, AGGREGATE_INDEXES)
                result = await self.writer.write(
                    self.target.collection(name),
                    agg,
                    batch_id,
                    skip=plan.skip.get((org, name), frozenset()),
                    written=plan.written.setdefault((org, name), set()),
                )
            except Exception as exc:
                error = map_error(exc, f"aggregate upsert into {name[:80]}", self.target.where)
                if isinstance(error, InvalidCollection):
                    raise error from exc
                raise
            plan.done.add((org, name))
            self._after_write(org, name, result)

    def _after_write(self, org: str, collection: str, result: WriteResult) -> None:
        if result.step2_error:
            log.error(
                "Aggregate counts written, but the averages and lists of the document could not be refreshed.",
                extra={"pump": self.name, "org": org, "collection": collection, "error": result.step2_error[:300]},
            )
            if is_size_error(Exception(result.step2_error)) and self._heal(None):
                log.warning("Later batches go to new, smaller documents.", extra={"pump": self.name, "org": org})
        if result.doc is not None:
            warning = tag_count_warning(result.doc, self.meta.threshold_len_tag_list)
            if warning:
                log.warning(warning, extra={"pump": self.name, "org": org, "collection": collection})

    def _heal(self, exc: AggregateTooLarge | None) -> bool:
        """Self-healing: halve ``aggregation_time`` and restart the bucket clock, so the orgs still
        to write (and later batches) go to new documents. False when it cannot help."""
        before = self.clock.aggregation_time
        if not self.meta.enable_aggregate_self_healing or before <= 1:
            return False
        self.clock.aggregation_time = halve_aggregation_time(before)
        self.clock.reset()
        log.warning(
            "Aggregate document too large; aggregation_time decreased.",
            extra={
                "pump": self.name,
                "from_minutes": before,
                "to_minutes": self.clock.aggregation_time,
                "org": exc.org if exc else "",
                "error": str(exc.cause)[:200] if exc else "",
            },
        )
        return True

    def _rebuild_pending(self, plan: Plan, records: Sequence[Record]) -> None:
        """Re-aggregate only the orgs with a collection still to write, with the new clock."""
        names = {org: collection_names(org, self.meta.use_mixed_collection) for org in plan.aggregates}
        pending = {org for org, cols in names.items() if any((org, c) not in plan.done for c in cols)}
        fresh = self._aggregate([r for r in records if r.org_id in pending])
        plan.aggregates.update(fresh)
        for key, prefixes in plan.written.items():  # parts already in the old documents stay there
            plan.skip[key] = frozenset(prefixes)

    async def close(self) -> None:
        await self.target.close()

    async def check(self) -> None:
        await self.target.check()


def build(ctx: SinkContext, meta: Meta) -> MongoAggregateSink:
    sink = MongoAggregateSink(ctx.name, meta, ctx.pump.timeout)
    sink.extra_dimensions = tuple(ctx.pump.extra_dimensions)
    return sink
