"""``sql-graph-aggregate``: Tyk's GraphQL aggregate pump — counters per API id, REST dimensions plus
``types``, ``fields``, ``operation`` and ``rootfields``, in ``tyk_graph_aggregated[_YYYYMMDD]``
(rows from :mod:`pump.aggregate.graph`).

The settings are ``sql_aggregate``'s (Tyk reuses its ``SQLAggregatePumpConf``), but as in Tyk only
``store_analytics_per_minute`` and ``table_sharding`` shape the rows: the graph aggregate never
tracks all paths nor ignores tags or dimensions. The write is ``sql_aggregate``'s, on the three
dialects, with the ledger of applied batch ids in the same transaction (exactly once). Tyk creates
no index on this table (only the primary key), nor do we.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pump.aggregate.graph import GRAPH_AGGREGATE_TABLE, build_graph_rows
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


def graph_rows_of(meta: Meta) -> RowsOf:
    def rows_of(records: Sequence[Any]) -> dict[str, list[Any]]:
        return dict(build_graph_rows(records, per_minute=meta.store_analytics_per_minute, sharding=meta.table_sharding))

    return rows_of


def build(ctx: SinkContext, meta: Meta) -> AggregateSink:
    sink = AggregateSink(
        ctx.name,
        meta,
        target_of(meta),
        GRAPH_AGGREGATE_SPEC,
        graph_rows_of(meta),
        meta.ledger_retention_days,
        concurrency_of(ctx.config, ctx.name),
    )
    sink.metrics = ctx.extra.get("metrics")
    return sink


#: ``sql-graph-aggregate``.
GRAPH_AGGREGATE = SinkSpec(meta=Meta, build=build)
