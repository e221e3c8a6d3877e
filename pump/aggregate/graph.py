"""Tyk's per-API aggregates: GraphQL (``AggregateGraphData``, ``sql-graph-aggregate``) and MCP
(``AggregateMCPData``, ``sql-mcp-aggregate``). One aggregate per API id over GraphQL (resp. MCP)
records only, with the REST dimensions plus, for GraphQL, ``types``, ``fields``
(``<Type>_<field>``), ``operation`` (``Query``/``Mutation``/``Subscription``, empty if unknown)
and ``rootfields``; for MCP ``methods`` (JSON-RPC method), ``primitives`` (primitive type) and
``names`` (``<type>_<name>``, human identifier the name). Rows of ``tyk_graph_aggregated`` /
``tyk_mcp_aggregated``.

The REST dimensions and the total come from :func:`pump.aggregate.engine.aggregate_records`
(``by_api``: its rules, Tyk's). The graph dimensions count each record once with its own counter,
merged like Tyk's ``incrementOrSetUnit`` (minimums lowered only by records without errors,
``last_time`` the first record's). A record with GraphQL errors counts as an error in them even
with a 2xx response (Tyk's rule); Tyk then decrements its success, which makes a 3xx record's
success -1 — here success stays at least 0 (a count cannot be negative; documented).

Row ids are Tyk's: hex of ``<bucket unix seconds> + api_id + dimension + value``; each row also
carries ``api_id``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import NamedTuple

from pump.aggregate.buckets import Bucketer, sql_bucketer
from pump.aggregate.engine import aggregate_records
from pump.aggregate.model import Counter, OrgAggregate, iter_dimensions
from pump.aggregate.sql_rows import counter_row, day_runs, merge_row, unix_seconds
from pump.record import Record

GRAPH_AGGREGATE_TABLE = "tyk_graph_aggregated"
MCP_AGGREGATE_TABLE = "tyk_mcp_aggregated"
OPERATIONS = {1: "Query", 2: "Mutation", 3: "Subscription"}
_COUNTER_FIELDS = tuple(f.name for f in fields(Counter) if f.name != "error_map")


class GraphRow(NamedTuple):
    """A row of ``tyk_graph_aggregated``: the ``AggregateRow`` columns, then ``api_id``."""

    id: str
    org_id: str
    dimension: str
    dimension_value: str
    timestamp: int
    counter_hits: int
    counter_success: int
    counter_error: int
    counter_request_time: float
    counter_total_request_time: float
    counter_identifier: str
    counter_human_identifier: str
    counter_last_time: datetime
    counter_open_connections: int
    counter_closed_connections: int
    counter_bytes_in: int
    counter_bytes_out: int
    counter_max_upstream_latency: int
    counter_min_upstream_latency: int
    counter_total_upstream_latency: int
    counter_upstream_latency: float
    counter_max_latency: int
    counter_min_latency: int
    counter_total_latency: int
    counter_latency: float
    code_1x: int
    code_200: int
    code_201: int
    code_2x: int
    code_301: int
    code_302: int
    code_303: int
    code_304: int
    code_3x: int
    code_400: int
    code_401: int
    code_403: int
    code_404: int
    code_429: int
    code_4x: int
    code_500: int
    code_501: int
    code_502: int
    code_503: int
    code_504: int
    code_5x: int
    api_id: str


@dataclass(slots=True)
class GraphAggregate:
    """One API's aggregate: the REST part and the four graph dimensions."""

    base: OrgAggregate
    types: dict[str, Counter] = field(default_factory=dict)
    fields: dict[str, Counter] = field(default_factory=dict)
    operation: dict[str, Counter] = field(default_factory=dict)
    rootfields: dict[str, Counter] = field(default_factory=dict)

    def graph_dimensions(self) -> Iterator[tuple[str, str, Counter]]:
        for name, table in (("types", self.types), ("fields", self.fields), ("operation", self.operation), ("rootfields", self.rootfields)):
            for key, c in table.items():
                yield name, key, c


def record_counter(r: Record, graph: bool = True) -> Counter:
    """Tyk's per-record counter (``incrementAggregate``), with the GraphQL error rule if ``graph``."""
    ts = r.timestamp
    if r.response_code == -1:
        return Counter(
            last_time=ts, open_connections=r.network_open_connections, closed_connections=r.network_closed_connections,
            bytes_in=r.network_bytes_in, bytes_out=r.network_bytes_out,
        )  # fmt: skip
    code = r.response_code
    c = Counter(
        hits=1, total_request_time=float(r.request_time), last_time=ts,
        max_upstream_latency=r.latency_upstream, min_upstream_latency=r.latency_upstream, total_upstream_latency=r.latency_upstream,
        max_latency=r.latency_total, min_latency=r.latency_total, total_latency=r.latency_total,
    )  # fmt: skip
    if code >= 400:
        c.error_total = 1
        c.error_map = {str(code): 1}
    if 200 <= code < 300:
        c.success = 1
    stats = r.graphql_stats or {}
    if graph and (stats.get("HasErrors") or code >= 400) and c.error_total < 1:
        c.error_total += 1
        c.success = max(0, c.success - 1)
    return c


def _merge(table: dict[str, Counter], key: str, base: Counter, human: str | None = None) -> None:
    """Tyk's ``incrementOrSetUnit``, then identifier ``key`` and human identifier ``human`` (or key)."""
    c = table.get(key)
    if c is None:
        c = Counter(**{f: getattr(base, f) for f in _COUNTER_FIELDS}, error_map=dict(base.error_map))
        table[key] = c
    else:
        c.hits += base.hits
        c.success += base.success
        c.error_total += base.error_total
        for code, n in base.error_map.items():
            c.error_map[code] = c.error_map.get(code, 0) + n
        c.total_request_time += base.total_request_time
        c.max_latency = max(c.max_latency, base.max_latency)
        c.max_upstream_latency = max(c.max_upstream_latency, base.max_upstream_latency)
        if base.error_total == 0:
            c.min_latency = min(c.min_latency, base.min_latency)
            c.min_upstream_latency = min(c.min_upstream_latency, base.min_upstream_latency)
        c.total_latency += base.total_latency
        c.total_upstream_latency += base.total_upstream_latency
    c.identifier = key
    c.human_identifier = key if human is None else human


def aggregate_graph(records: Sequence[Record], bucket_of: Bucketer) -> dict[str, GraphAggregate]:
    """GraphQL records → one :class:`GraphAggregate` per API id (first-seen order)."""
    result = {api: GraphAggregate(base) for api, base in aggregate_records(records, bucket_of, by_api=_is_graph).items()}
    for r in records:
        if not r.is_graph:
            continue
        agg = result[r.api_id]
        counter = record_counter(r)
        stats = r.graphql_stats or {}
        _merge(agg.operation, OPERATIONS.get(int(stats.get("OperationType") or 0), ""), counter)
        for type_name, names in (stats.get("Types") or {}).items():
            _merge(agg.types, type_name, counter)
            for name in names or ():
                _merge(agg.fields, f"{type_name}_{name}", counter)
        for name in stats.get("RootFields") or ():
            _merge(agg.rootfields, name, counter)
    for agg in result.values():
        for _, _, c in agg.graph_dimensions():
            c.refresh_averages()
    return result


@dataclass(slots=True)
class MCPAggregate:
    """One API's MCP aggregate: the REST part and the three MCP dimensions."""

    base: OrgAggregate
    methods: dict[str, Counter] = field(default_factory=dict)
    primitives: dict[str, Counter] = field(default_factory=dict)
    names: dict[str, Counter] = field(default_factory=dict)

    def graph_dimensions(self) -> Iterator[tuple[str, str, Counter]]:
        for name, table in (("methods", self.methods), ("primitives", self.primitives), ("names", self.names)):
            for key, c in table.items():
                yield name, key, c


def _is_graph(r: Record) -> bool:
    return r.is_graph


def _is_mcp(r: Record) -> bool:
    return r.is_mcp


def aggregate_mcp(records: Sequence[Record], bucket_of: Bucketer) -> dict[str, MCPAggregate]:
    """MCP records → one :class:`MCPAggregate` per API id (first-seen order)."""
    result = {api: MCPAggregate(base) for api, base in aggregate_records(records, bucket_of, by_api=_is_mcp).items()}
    for r in records:
        if not r.is_mcp:
            continue
        agg = result[r.api_id]
        counter = record_counter(r, graph=False)
        stats = r.mcp_stats or {}
        method, ptype, pname = (str(stats.get(k) or "") for k in ("JSONRPCMethod", "PrimitiveType", "PrimitiveName"))
        if method:
            _merge(agg.methods, method, counter)
        if ptype:
            _merge(agg.primitives, ptype, counter)
        if pname:
            _merge(agg.names, f"{ptype}_{pname}" if ptype else pname, counter, human=pname)
    for agg in result.values():
        for _, _, c in agg.graph_dimensions():
            c.refresh_averages()
    return result


def api_rows(api_id: str, agg: GraphAggregate | MCPAggregate) -> list[GraphRow]:
    """The rows of one API: REST dimensions, its own dimensions, total; ids made with the API id."""
    unix = unix_seconds(agg.base.timestamp)
    rest = list(iter_dimensions(agg.base))
    ordered = [*rest[:-1], *agg.graph_dimensions(), rest[-1]]
    return [GraphRow(*counter_row(unix, api_id, d, v, c)._replace(org_id=agg.base.org_id), api_id) for d, v, c in ordered]


def _merge_rows(a: GraphRow, b: GraphRow) -> GraphRow:
    return GraphRow(*merge_row(a[:-1], b[:-1]), a.api_id)


def build_graph_rows(
    records: Sequence[Record], *, per_minute: bool = False, sharding: bool = False, mcp: bool = False
) -> dict[str, list[GraphRow]]:
    """A batch → ``{table: rows}`` unique by id, sorted by id (runs of one date when sharding);
    GraphQL rows, or MCP rows with ``mcp``."""
    bucket_of = sql_bucketer(per_minute)
    prefix = MCP_AGGREGATE_TABLE if mcp else GRAPH_AGGREGATE_TABLE
    tables: dict[str, dict[str, GraphRow]] = {}
    for table, run in day_runs(records, sharding):
        merged = tables.setdefault(prefix + table[len("tyk_aggregated") :], {})
        aggregates: dict[str, GraphAggregate] | dict[str, MCPAggregate] = (
            aggregate_mcp(run, bucket_of) if mcp else aggregate_graph(run, bucket_of)
        )
        for api_id, agg in aggregates.items():
            for row in api_rows(api_id, agg):
                old = merged.get(row.id)
                merged[row.id] = row if old is None else _merge_rows(old, row)
    return {t: [rows[k] for k in sorted(rows)] for t, rows in tables.items()}


__all__ = [
    "GRAPH_AGGREGATE_TABLE",
    "MCP_AGGREGATE_TABLE",
    "GraphAggregate",
    "GraphRow",
    "MCPAggregate",
    "aggregate_graph",
    "aggregate_mcp",
    "build_graph_rows",
]
