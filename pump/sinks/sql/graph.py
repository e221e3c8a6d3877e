"""``sql-graph`` and ``sql-mcp``: Tyk's GraphQL and MCP raw SQL pumps (tyk-pump.md §4).

``sql-graph`` keeps only GraphQL records (``GraphQLStats.IsGraphQL``) and writes Tyk's
``GraphRecord`` into ``tyk_analytics_graph`` (``table_name``): the record's columns with the prefix
``analytics_`` (gorm ``embeddedPrefix``), plus ``types``, ``operation_type`` (``Query``,
``Mutation``, ``Subscription`` or empty), ``variables``, ``root_fields``, ``errors`` and
``has_errors`` (also true for a response code >= 400, as Tyk's ``ToGraphRecord`` sets it).
``sql-mcp`` keeps only MCP records and writes Tyk's ``MCPRecord`` into ``tyk_analytics_mcp``:
``jsonrpc_method``, ``primitive_type``, ``primitive_name`` and the prefixed record columns.

As for ``sql``, ours adds ``id`` (the record id, primary key) so a redelivered batch writes each
row once; sharding, batching, the three dialects and exactly-once are those of ``sql``. Tyk
creates no other index on these tables, nor do we.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from pump.record import Record
from pump.sinks.base import SinkContext, SinkSpec
from pump.sinks.sql.backend import concurrency_of
from pump.sinks.sql.columns import RAW_COLUMNS, graphql_values
from pump.sinks.sql.config import SqlMeta, target_of
from pump.sinks.sql.raw import SqlSink, row_values
from pump.sinks.sql.schema import TABLE_NAME, TableSpec, allow_table
from pump.sinks.sql.shape import RowShape, plain_shape

GRAPH_TABLE = "tyk_analytics_graph"
MCP_TABLE = "tyk_analytics_mcp"
_PREFIXED = tuple((f"analytics_{name}", kind) for name, kind in RAW_COLUMNS[1:])

GRAPH_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "text"),
    ("types", "text"),
    *_PREFIXED,
    ("operation_type", "text"),
    ("variables", "text"),
    ("root_fields", "text"),
    ("errors", "text"),
    ("has_errors", "bool"),
)
MCP_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "text"),
    ("jsonrpc_method", "text"),
    ("primitive_type", "text"),
    ("primitive_name", "text"),
    *_PREFIXED,
)
OPERATIONS = {1: "Query", 2: "Mutation", 3: "Subscription"}


class Meta(SqlMeta):
    """Tyk's ``GraphSQLConf`` / ``MCPSQLConf``: ``SQLConf`` plus ``table_name``."""

    table_name: str = Field("", description="the table (default tyk_analytics_graph / tyk_analytics_mcp)")

    @field_validator("table_name")
    @classmethod
    def _table_name(cls, v: str) -> str:
        if v and not TABLE_NAME.match(v):
            raise ValueError("letters, digits and _ only, at most 41 characters, not starting with a digit")
        return v


def is_graph(r: Record) -> bool:
    return bool(r.graphql_stats and r.graphql_stats.get("IsGraphQL"))


def is_mcp(r: Record) -> bool:
    return bool(r.mcp_stats and r.mcp_stats.get("IsMCP"))


def graph_values(r: Record) -> tuple[Any, ...]:
    """A ``GraphRecord`` row: the GraphQL stats around the record's own columns."""
    row = row_values(r)
    variables, root_fields, types, errors, operation, has_errors, _ = graphql_values(r.graphql_stats)
    return (row[0], types, *row[1:], OPERATIONS.get(operation, ""), variables, root_fields, errors, has_errors or r.response_code >= 400)


def mcp_record_values(r: Record) -> tuple[Any, ...]:
    """An ``MCPRecord`` row: method, primitive type and name, then the record's own columns."""
    row = row_values(r)
    stats = r.mcp_stats or {}
    method, ptype, pname = (str(stats.get(k) or "") for k in ("JSONRPCMethod", "PrimitiveType", "PrimitiveName"))
    return (row[0], method, ptype, pname, *row[1:])


def graph_shape(table: str = GRAPH_TABLE) -> RowShape:
    return plain_shape(TableSpec(allow_table(table), GRAPH_COLUMNS, ()), "pump_stage_graph", is_graph, graph_values)


def mcp_shape(table: str = MCP_TABLE) -> RowShape:
    return plain_shape(TableSpec(allow_table(table), MCP_COLUMNS, ()), "pump_stage_mcp", is_mcp, mcp_record_values)


def build_graph(ctx: SinkContext, meta: Meta) -> SqlSink:
    return SqlSink(ctx.name, meta, target_of(meta), concurrency_of(ctx.config, ctx.name), graph_shape(meta.table_name or GRAPH_TABLE))


def build_mcp(ctx: SinkContext, meta: Meta) -> SqlSink:
    return SqlSink(ctx.name, meta, target_of(meta), concurrency_of(ctx.config, ctx.name), mcp_shape(meta.table_name or MCP_TABLE))


#: ``sql-graph``.
GRAPH = SinkSpec(meta=Meta, build=build_graph)
#: ``sql-mcp``.
MCP = SinkSpec(meta=Meta, build=build_mcp)
