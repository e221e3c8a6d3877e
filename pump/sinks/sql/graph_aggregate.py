"""``sql-graph-aggregate`` and ``sql-mcp-aggregate``: Tyk's GraphQL and MCP aggregate pumps —
counters per API id, the REST dimensions plus ``types``, ``fields``, ``operation``, ``rootfields``
(GraphQL, ``tyk_graph_aggregated[_YYYYMMDD]``) or ``methods``, ``primitives``, ``names`` (MCP,
``tyk_mcp_aggregated[_YYYYMMDD]``); rows from :mod:`pump.aggregate.graph`, with an ``api_id``.

The settings are ``sql_aggregate``'s (Tyk reuses its ``SQLAggregatePumpConf``), but as in Tyk only
``store_analytics_per_minute`` and ``table_sharding`` shape the rows: the graph aggregate never
tracks all paths nor ignores tags or dimensions. The write is ``sql_aggregate``'s, on the three
dialects, with the ledger of applied batch ids in the same transaction (exactly once). Tyk creates
no index on the GraphQL table (only the primary key), nor do we; the MCP table gets
``<table>_idx_dimension`` on ``(dimension, timestamp, org_id, dimension_value)``, as in Tyk.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pump.aggregate.graph import GRAPH_AGGREGATE_TABLE, MCP_AGGREGATE_TABLE, build_graph_rows
from pump.aggregate.sql_rows import INDEX_COLUMNS
from pump.sinks.base import SinkContext, SinkSpec
from pump.sinks.sql.aggregate import AggregateSink, Meta, RowsOf
from pump.sinks.sql.backend import concurrency_of
from pump.sinks.sql.config import target_of
from pump.sinks.sql.schema import TableSpec
from pump.sinks.sql.statements import AGGREGATE_COLUMNS, CONSTANT_COLUMNS

_CONSTANTS = {name for name, _ in CONSTANT_COLUMNS}
#: ``tyk_aggregated``'s columns plus ``api_id`` (the row order of ``GraphRow``, then the constants).
GRAPH_AGGREGATE_COLUMNS: tuple[tuple[str, str], ...] = (
    *(c for c in AGGREGATE_COLUMNS if c[0] not in _CONSTANTS),
    ("api_id", "text"),
    *(c for c in AGGREGATE_COLUMNS if c[0] in _CONSTANTS),
)
GRAPH_AGGREGATE_SPEC = TableSpec(GRAPH_AGGREGATE_TABLE, GRAPH_AGGREGATE_COLUMNS, ())
MCP_AGGREGATE_SPEC = TableSpec(MCP_AGGREGATE_TABLE, GRAPH_AGGREGATE_COLUMNS, (("idx_dimension", INDEX_COLUMNS),))


def graph_rows_of(meta: Meta, mcp: bool = False) -> RowsOf:
    def rows_of(records: Sequence[Any]) -> dict[str, list[Any]]:
        return dict(build_graph_rows(records, per_minute=meta.store_analytics_per_minute, sharding=meta.table_sharding, mcp=mcp))

    return rows_of


def build(ctx: SinkContext, meta: Meta) -> AggregateSink:
    return _build(ctx, meta, mcp=False)


def build_mcp(ctx: SinkContext, meta: Meta) -> AggregateSink:
    return _build(ctx, meta, mcp=True)


def _build(ctx: SinkContext, meta: Meta, mcp: bool) -> AggregateSink:
    sink = AggregateSink(
        ctx.name,
        meta,
        target_of(meta),
        MCP_AGGREGATE_SPEC if mcp else GRAPH_AGGREGATE_SPEC,
        graph_rows_of(meta, mcp),
        meta.ledger_retention_days,
        concurrency_of(ctx.config, ctx.name),
    )
    sink.metrics = ctx.extra.get("metrics")
    return sink


#: ``sql-graph-aggregate``.
GRAPH_AGGREGATE = SinkSpec(meta=Meta, build=build)
#: ``sql-mcp-aggregate``.
MCP_AGGREGATE = SinkSpec(meta=Meta, build=build_mcp)
