"""Tyk's GraphQL aggregate (pump/aggregate/graph.py): one aggregate per API over GraphQL records,
graph dimensions merged like Tyk's incrementOrSetUnit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pump.aggregate.graph import GraphRow, build_graph_rows
from pump.aggregate.sql_rows import SQL_COLUMNS
from pump.record import Record

T = datetime(2024, 1, 15, 13, 45, 12, tzinfo=UTC)


def gql(code: int = 200, latency: int = 10, op: int = 1, has_errors: bool = False, **fields: Any) -> Record:
    stats = {"IsGraphQL": True, "OperationType": op, "Types": {"Query": ["a"]}, "RootFields": ["a"], "HasErrors": has_errors}
    base: dict[str, Any] = {"org_id": "o", "api_id": "g", "timestamp": T, "response_code": code, "latency_total": latency,
                            "latency_upstream": latency, "request_time": latency, "graphql_stats": stats}  # fmt: skip
    return Record(**{**base, **fields})


def rows(records: list[Record]) -> dict[tuple[str, str], GraphRow]:
    (table,) = build_graph_rows(records).values()
    return {(r.dimension, r.dimension_value): r for r in table}


def test_only_graph_records_one_aggregate_per_api() -> None:
    got = rows([gql(), Record(org_id="o", api_id="g", timestamp=T, response_code=200), gql(api_id="h", org_id="p")])
    totals = {k: r for k, r in got.items() if k == ("", "total")}
    assert len(totals) == 1  # the REST record is not counted; "h" has rows of its own (another id)
    (table,) = build_graph_rows([gql(), gql(api_id="h", org_id="p")]).values()
    assert {(r.api_id, r.org_id) for r in table} == {("g", "o"), ("h", "p")}
    assert got[("", "total")].counter_hits == 1
    assert GraphRow._fields == (*SQL_COLUMNS, "api_id")


def test_graph_dimensions_merge_like_tyk() -> None:
    later = T + timedelta(seconds=5)
    got = rows(
        [gql(latency=50), gql(code=500, latency=5, timestamp=later), gql(latency=20, op=2, has_errors=True), gql(code=304, has_errors=True)]
    )
    op = got[("operation", "Query")]
    assert (op.counter_hits, op.counter_success, op.counter_error, op.code_500) == (3, 1, 2, 1)
    assert op.counter_min_latency == 50  # the 500 (5 ms) and the 304 with GraphQL errors (10 ms) do not lower it
    assert op.counter_max_latency == 50 and op.counter_last_time == T  # the first record's time
    mutation = got[("operation", "Mutation")]
    assert (mutation.counter_success, mutation.counter_error) == (0, 1)  # 200 with GraphQL errors
    assert got[("types", "Query")].counter_hits == got[("fields", "Query_a")].counter_hits == got[("rootfields", "a")].counter_hits == 4
    assert got[("rootfields", "a")].counter_success == 1  # Tyk would make the 304's success -1; never below 0 here
    api = got[("apiid", "g")]
    assert (api.counter_hits, api.counter_success, api.counter_error) == (4, 2, 1)  # REST: the response codes only
    assert got[("", "total")].counter_latency == (50 + 5 + 20 + 10) / 4


def mcp(method: str = "tools/call", ptype: str = "tool", name: str = "weather", code: int = 200, **fields: Any) -> Record:
    stats = {"IsMCP": True, "JSONRPCMethod": method, "PrimitiveType": ptype, "PrimitiveName": name}
    base: dict[str, Any] = {"org_id": "o", "api_id": "m", "timestamp": T, "response_code": code, "latency_total": 7, "mcp_stats": stats}
    return Record(**{**base, **fields})


def test_mcp_dimensions_per_api() -> None:
    records = [mcp(), mcp(code=500), mcp(method="resources/read", ptype="resource", name="doc"), mcp(ptype="", name="bare"), gql()]
    (table,) = build_graph_rows(records, mcp=True).values()
    got = {(r.dimension, r.dimension_value): r for r in table}
    assert {r.api_id for r in table} == {"m"}  # the GraphQL record is not an MCP record
    assert got[("methods", "tools/call")].counter_hits == 3
    assert (got[("methods", "tools/call")].counter_error, got[("methods", "tools/call")].code_500) == (1, 1)
    assert got[("primitives", "tool")].counter_hits == 2 and got[("primitives", "resource")].counter_hits == 1
    assert got[("names", "tool_weather")].counter_human_identifier == "weather"  # Tyk's label <type>_<name>
    assert got[("names", "bare")].counter_hits == 1  # no primitive type: the name alone
    assert ("primitives", "") not in got and got[("", "total")].counter_hits == 4
    assert build_graph_rows([gql()], mcp=True) == {"tyk_mcp_aggregated": []}
