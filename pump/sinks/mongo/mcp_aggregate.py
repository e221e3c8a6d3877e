"""``mongo-mcp-aggregate``: Tyk's MCP aggregates in MongoDB (tyk-pump.md §4), one document per org,
time bucket and API id (``owner_apiid``), with the REST counters plus ``methods``, ``primitives``
and ``names`` (:mod:`pump.aggregate.mcp_mongo`), in ``z_tyk_mcp_analyticz_aggregate_<org>`` and,
with ``use_mixed_collection``, ``tyk_mcp_analytics_aggregate``.

Everything else is ``mongo-pump-aggregate``'s: its settings (``track_all_paths``,
``ignore_tag_prefix_list`` and ``ignore_aggregations`` have no effect, as in Tyk), the bucket clock,
the two-step update, the exactly-once ledger in the document, self-healing and the dead-lettering
of records whose org cannot name a collection. Only MCP records are aggregated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pump.aggregate.graph import MCPAggregate, aggregate_mcp
from pump.aggregate.mcp_mongo import mcp_change, mcp_collection_names, mcp_filter
from pump.record import Record
from pump.sinks.base import SinkContext, SinkSpec
from pump.sinks.mongo.aggregate import Meta, MongoAggregateSink, Plan
from pump.sinks.mongo.client import AGGREGATE_INDEXES
from pump.sinks.mongo.config import database_name
from pump.sinks.mongo.documents import gc_paused
from pump.sinks.mongo.errors import InvalidCollection, collection_name_problem, map_error


class MongoMCPAggregateSink(MongoAggregateSink):
    """Per-API MCP aggregates; the plan's aggregates are keyed by API id."""

    def _aggregate(self, records: Sequence[Record]) -> dict[str, Any]:
        with gc_paused():
            return dict(aggregate_mcp(records, self.clock))

    def _rejected(self, plan: Plan, records: Sequence[Record]) -> dict[int, str]:
        if not plan.invalid:
            return {}
        return {i: f"mongo-mcp-aggregate: {plan.invalid[r.api_id]}" for i, r in enumerate(records) if r.is_mcp and r.api_id in plan.invalid}

    async def _apply_org(self, plan: Plan, org: str, agg: Any, batch_id: str) -> None:
        """One API's aggregate (``org`` is the API id here) into its org's collections."""
        assert isinstance(agg, MCPAggregate)
        if org in plan.invalid:
            return
        names = mcp_collection_names(agg.base.org_id, self.meta.use_mixed_collection)
        database = database_name(self.meta.mongo_url.get_secret_value())
        for name in names:
            problem = collection_name_problem(database, name)
            if problem:
                raise InvalidCollection(problem)
        for name in names:
            if (org, name) in plan.done:
                continue
            try:
                await self.target.prepare(name, AGGREGATE_INDEXES)
                result = await self.writer.write(
                    self.target.collection(name), agg.base, batch_id, query=mcp_filter(org, agg), change=mcp_change(agg)
                )
            except Exception as exc:
                error = map_error(exc, f"aggregate upsert into {name[:80]}", self.target.where)
                if isinstance(error, InvalidCollection):
                    raise error from exc
                raise
            plan.done.add((org, name))
            self._after_write(agg.base.org_id, name, result)

    def _rebuild_pending(self, plan: Plan, records: Sequence[Record]) -> None:
        pending = {
            api
            for api, agg in plan.aggregates.items()
            if any((api, c) not in plan.done for c in mcp_collection_names(_org_of(agg), self.meta.use_mixed_collection))
        }
        plan.aggregates.update(self._aggregate([r for r in records if r.api_id in pending]))


def _org_of(agg: Any) -> str:
    return str(agg.base.org_id)


def build(ctx: SinkContext, meta: Meta) -> MongoMCPAggregateSink:
    return MongoMCPAggregateSink(ctx.name, meta, ctx.pump.timeout)


#: ``mongo-mcp-aggregate``.
MCP_AGGREGATE = SinkSpec(meta=Meta, build=build)
