"""Issue 11: the columns Tyk's SQL pumps write that the previous version of this pump lacked, and
the opt-in migration of tables that version created.

The golden records (tests/fixtures/tyk/records.json, encoded by Tyk's own Go code) go through the
whole pipeline into ``tyk_analytics`` on PostgreSQL and SQLite. Tyk's gorm fork writes a map or
slice column as ``json.MarshalSafeCollections`` of the value, which for a non-nil value is the
same text as ``json.Marshal``: the expected column text is cut out of Go's own JSON of the record
(``go_json_text``), byte for byte; nil values are ``{}`` / ``[]``.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pump.decode.msgpack import record_id
from pump.errors import RetriableError
from pump.sinks.base import SinkBatch
from pump.sinks.sql import aggregate as agg
from pump.sinks.sql import raw
from pump.sinks.sql.config import target_of
from tests.helpers import ROOT, numbered, push, run_once, write_config
from tests.integration import sql_helpers
from tests.integration.sql_helpers import Db

pytestmark = pytest.mark.integration
db = sql_helpers.db  # fixture (PostgreSQL, SQLite and MariaDB)
pg_dsn = sql_helpers.pg_dsn  # fixtures used by db
my_dsn = sql_helpers.my_dsn

CASES = json.loads((ROOT / "tests/fixtures/tyk/records.json").read_text())["cases"]
NEW_COLUMNS = (
    "geo_city_names",
    "graphql_stats_variables",
    "graphql_stats_root_fields",
    "graphql_stats_types",
    "graphql_stats_errors",
    "graphql_stats_operation_type",
    "graphql_stats_has_errors",
    "graphql_stats_is_graph_ql",
    "mcp_stats_is_mcp",
    "mcp_stats_jsonrpc_method",
    "mcp_stats_primitive_type",
    "mcp_stats_primitive_name",
)


def go_time_us(text: str) -> datetime:
    """A Go RFC 3339 UTC time with nanoseconds, cut to the microseconds the databases keep."""
    head, _, frac = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{head}.{(frac or '0')[:6].ljust(6, '0')}+00:00")


def go_text(doc_text: str, *path: str) -> str | None:
    """The exact bytes Go printed for the value at ``path`` of a JSON object (None for null)."""
    decoder = json.JSONDecoder()
    pos = 0
    for key in path:
        pos = doc_text.index(json.dumps(key) + ":", pos) + len(json.dumps(key)) + 1
    value, end = decoder.raw_decode(doc_text, pos)
    return None if value is None else doc_text[pos:end]


def expected_row(case: dict[str, Any]) -> dict[str, Any]:
    text, doc = case["go_json_text"], case["go_json"]
    gql, mcp = doc["graphql_stats"], doc["mcp_stats"]
    return {
        "geo_city_names": go_text(text, "geo", "city", "names") or "{}",
        "geo_location_latitude": doc["geo"]["location"]["latitude"],
        "geo_location_longitude": doc["geo"]["location"]["longitude"],
        "graphql_stats_variables": gql["Variables"],
        "graphql_stats_root_fields": go_text(text, "graphql_stats", "RootFields") or "[]",
        "graphql_stats_types": go_text(text, "graphql_stats", "Types") or "{}",
        "graphql_stats_errors": go_text(text, "graphql_stats", "Errors") or "[]",
        "graphql_stats_operation_type": gql["OperationType"],
        "graphql_stats_has_errors": gql["HasErrors"],
        "graphql_stats_is_graph_ql": gql["IsGraphQL"],
        "mcp_stats_is_mcp": mcp["is_mcp"],
        "mcp_stats_jsonrpc_method": mcp["jsonrpc_method"],
        "mcp_stats_primitive_type": mcp["primitive_type"],
        "mcp_stats_primitive_name": mcp["primitive_name"],
    }


def test_golden_records_fill_tyks_columns(tmp_path: Path, redis_url: str, db: Db) -> None:
    payloads = [bytes.fromhex(c["msgpack_hex"]) for c in CASES]
    push(redis_url, payloads)
    config = write_config(tmp_path / "pump.json", redis_url, {"sql": {"type": "sql", "meta": db.meta}})
    proc = run_once(config)
    assert proc.returncode == 0, proc.stderr[-4000:]
    got = {r["id"]: r for r in db.dicts("SELECT * FROM tyk_analytics")}
    assert set(NEW_COLUMNS) <= set(next(iter(got.values())))
    graph = 0
    for case, payload in zip(CASES, payloads, strict=True):
        if case["go_json"]["mcp_stats"]["is_mcp"]:
            assert record_id(payload) not in got  # the raw SQL pump skips MCP records, as Tyk's
            continue
        have = got[record_id(payload)]
        for column, want in expected_row(case).items():
            value = have[column]
            if isinstance(want, bool):
                value = bool(value)  # SQLite keeps booleans as 0/1
            assert value == want, (case["name"], column)
        graph += bool(have["graphql_stats_is_graph_ql"])
    assert graph == 1  # the fixture's GraphQL case is stored with its stats
    assert got[record_id(payloads[[c["name"] for c in CASES].index("graphql_mutation")])]["graphql_stats_errors"] == (
        '[{"message":"Cannot return null for non-nullable field User.name","path":["createUser","name"]},'
        '{"message":"index error","path":["createUser",0]}]'
    )


def test_html_characters_in_json_columns_are_escaped_as_go_does(db: Db) -> None:
    r = numbered(1)[0]
    r.geo_city_names = {"en": "A&B <x>"}
    r.graphql_stats = {"IsGraphQL": True, "Types": {"T": None}, "Errors": [{"Message": "<b>"}]}
    values = dict(zip(raw.COLUMN_NAMES, raw.row_values(r), strict=True))
    assert values["geo_city_names"] == '{"en":"A\\u0026B \\u003cx\\u003e"}'
    assert values["graphql_stats_types"] == '{"T":[]}'  # nil slices inside: [] (MarshalSafeCollections)
    assert values["graphql_stats_errors"] == '[{"message":"\\u003cb\\u003e","path":[]}]'
    assert values["graphql_stats_root_fields"] == "[]"


# --------------------------------------------------------------------------- migration (PostgreSQL)


def legacy_ddl(table: str, columns: tuple[tuple[str, str], ...], new: tuple[str, ...]) -> str:
    """The table as the previous version of this pump created it: no new columns, and
    ``double precision`` where Tyk has ``numeric``."""
    pg = {"text": "TEXT", "bigint": "BIGINT", "numeric": "DOUBLE PRECISION", "bool": "BOOLEAN", "timestamptz": "TIMESTAMPTZ"}
    cols = ", ".join(f'"{n}" {pg[k]}' for n, k in columns if n not in new)
    return f"CREATE TABLE {table} ({cols}, PRIMARY KEY (id))"


def raw_sink(dsn: str, **meta: Any) -> raw.SqlSink:
    m = raw.Meta(type="postgres", connection_string=dsn, **meta)
    return raw.SqlSink("sql", m, target_of(m))


def agg_sink(dsn: str, **meta: Any) -> agg.AggregateSink:
    m = agg.Meta(type="postgres", connection_string=dsn, **meta)
    return agg.AggregateSink("agg", m, target_of(m), agg.AGGREGATE_SPEC, agg.aggregate_rows_of(m))


def execute(dsn: str, query: str, params: tuple[Any, ...] = ()) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(query.encode(), params or None)


def pg_types(dsn: str, table: str) -> dict[str, str]:
    rows = Db("postgres", dsn).rows("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ?", (table,))
    return {str(n): str(t) for n, t in rows}


async def test_old_raw_table_is_refused_until_migrate_then_converted_exactly(pg_dsn: str) -> None:
    db = Db("postgres", pg_dsn)
    execute(pg_dsn, legacy_ddl("tyk_analytics", raw.RAW_COLUMNS, NEW_COLUMNS))
    execute(
        pg_dsn, "INSERT INTO tyk_analytics (id, geo_location_latitude, geo_location_longitude) VALUES ('old', %s, %s)", (0.1 + 0.2, -1 / 3)
    )
    refused = raw_sink(pg_dsn)
    with pytest.raises(RetriableError) as err:
        await refused.start()
    await refused.close()
    message = str(err.value)
    assert "older version of this pump" in message and "migrate: true" in message
    assert "geo_location_latitude, geo_location_longitude" in message
    assert pg_types(pg_dsn, "tyk_analytics")["geo_location_latitude"] == "double precision"  # untouched

    sink = raw_sink(pg_dsn, migrate=True)
    await sink.start()
    await sink.write(SinkBatch("b", numbered(2)))
    await sink.close()
    types = pg_types(pg_dsn, "tyk_analytics")
    assert (types["geo_location_latitude"], types["geo_location_longitude"]) == ("numeric", "numeric")
    assert set(types) == set(raw.COLUMN_NAMES)
    # Every digit of the stored doubles survives the conversion (a plain cast keeps 15).
    assert db.rows("SELECT geo_location_latitude, geo_location_longitude FROM tyk_analytics WHERE id = 'old'") == [(0.1 + 0.2, -1 / 3)]
    assert db.count("tyk_analytics") == 3
    again = raw_sink(pg_dsn)  # converted: no migrate needed any more
    await again.start()
    await again.close()


async def test_old_aggregate_table_is_refused_until_migrate(pg_dsn: str) -> None:
    db = Db("postgres", pg_dsn)
    execute(pg_dsn, legacy_ddl("tyk_aggregated", agg.AGGREGATE_SPEC.columns, ("counter_error_map", "counter_error_list")))
    refused = agg_sink(pg_dsn)
    with pytest.raises(RetriableError, match="counter_request_time, counter_total_request_time, counter_upstream_latency, counter_latency"):
        await refused.start()
    await refused.close()
    sink = agg_sink(pg_dsn, migrate=True)
    await sink.start()
    await sink.write(SinkBatch("b", numbered(3)))
    await sink.close()
    types = pg_types(pg_dsn, "tyk_aggregated")
    assert {c: types[c] for c in ("counter_request_time", "counter_latency", "counter_error_map")} == {
        "counter_request_time": "numeric",
        "counter_latency": "numeric",
        "counter_error_map": "text",
    }
    rows = db.dicts("SELECT counter_error_map, counter_error_list, counter_hits FROM tyk_aggregated WHERE dimension = ''")
    assert rows == [{"counter_error_map": "{}", "counter_error_list": "[]", "counter_hits": 3}]


# --------------------------------------------------------------------------- sql-graph, sql-mcp


def test_graph_and_mcp_pumps_keep_only_their_records(tmp_path: Path, redis_url: str, db: Db) -> None:
    """Tyk's GraphRecord / MCPRecord tables: the record's columns prefixed ``analytics_`` plus the
    GraphQL or MCP fields, and only GraphQL (resp. MCP) records; the same golden payloads also go
    to ``sql`` so the prefixed columns can be compared with the raw table's."""
    payloads = [bytes.fromhex(c["msgpack_hex"]) for c in CASES]
    push(redis_url, payloads)
    pumps = {
        "graph": {"type": "sql-graph", "meta": db.meta},
        "mcp": {"type": "sql-mcp", "meta": {**db.meta, "table_name": "my_mcp"}},
        "sql": {"type": "sql", "meta": db.meta},
    }
    proc = run_once(write_config(tmp_path / "pump.json", redis_url, pumps))
    assert proc.returncode == 0, proc.stderr[-4000:]
    raw_rows = {r["id"]: r for r in db.dicts("SELECT * FROM tyk_analytics")}
    by_name = {c["name"]: (c, record_id(p)) for c, p in zip(CASES, payloads, strict=True)}

    (graph,) = db.dicts("SELECT * FROM tyk_analytics_graph")
    case, rid = by_name["graphql_mutation"]
    gql = case["go_json"]["graphql_stats"]
    assert graph["id"] == rid
    assert graph["types"] == go_text(case["go_json_text"], "graphql_stats", "Types")
    assert graph["root_fields"] == go_text(case["go_json_text"], "graphql_stats", "RootFields")
    assert graph["errors"] == go_text(case["go_json_text"], "graphql_stats", "Errors")
    assert (graph["operation_type"], graph["variables"], bool(graph["has_errors"])) == ("Mutation", gql["Variables"], True)
    prefixed = {k.removeprefix("analytics_"): v for k, v in graph.items() if k.startswith("analytics_")}
    assert prefixed == {k: v for k, v in raw_rows[rid].items() if k != "id"}

    (mcp,) = db.dicts("SELECT * FROM my_mcp")
    case, rid = by_name["mcp_tools_call"]
    stats = case["go_json"]["mcp_stats"]
    assert mcp["id"] == rid and rid not in raw_rows  # sql skips MCP records; sql-mcp keeps only them
    assert (mcp["jsonrpc_method"], mcp["primitive_type"], mcp["primitive_name"]) == (
        stats["jsonrpc_method"], stats["primitive_type"], stats["primitive_name"],
    )  # fmt: skip
    assert bool(mcp["analytics_mcp_stats_is_mcp"]) and mcp["analytics_path"] == case["go_json"]["path"]
    assert db.tables("tyk_analytics_mcp") == []


# --------------------------------------------------------------------------- sql-graph-aggregate


def test_graph_aggregate_rows_per_api(tmp_path: Path, redis_url: str, db: Db) -> None:
    """Tyk's AggregateGraphData through the pipeline: only GraphQL records, keyed by API id, the
    REST dimensions with the response's success and the graph dimensions counting the GraphQL
    error (the golden mutation answered 200 with errors), ids hex(bucket + api_id + dim + value)."""
    payloads = [bytes.fromhex(c["msgpack_hex"]) for c in CASES]
    push(redis_url, payloads)
    proc = run_once(write_config(tmp_path / "pump.json", redis_url, {"gagg": {"type": "sql-graph-aggregate", "meta": db.meta}}))
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = {(r["dimension"], r["dimension_value"]): r for r in db.dicts("SELECT * FROM tyk_graph_aggregated")}
    api = "727dad853a8a45f64ab981154d1ffdad"
    bucket = 1705323600  # 2024-01-15T13:00:00Z: the hour of the record (13:45:12)
    assert rows[("", "total")]["timestamp"] == bucket
    graph_dims = {k for k in rows if k[0] in ("types", "fields", "operation", "rootfields")}
    assert graph_dims == {
        ("types", "Mutation"), ("types", "User"), ("fields", "Mutation_createUser"), ("fields", "User_id"),
        ("fields", "User_name"), ("operation", "Mutation"), ("rootfields", "createUser"),
    }  # fmt: skip
    for key, row in rows.items():
        assert row["api_id"] == api and row["org_id"] == "5e9d9544a1dcd60001d0ed20"
        assert row["id"] == f"{bucket}{api}{key[0]}{key[1]}".encode().hex()
        assert (row["counter_hits"], row["counter_total_latency"], row["counter_max_upstream_latency"]) == (1, 12, 10)
        assert (row["counter_error_map"], row["counter_error_list"]) == ("{}", "[]")
        want = (0, 1) if key in graph_dims else (1, 0)  # (success, error)
        assert (row["counter_success"], row["counter_error"]) == want, key
    assert ("apiid", api) in rows and ("errors", "200") not in rows
    assert {k[0] for k in rows} >= {"apiid", "apikeys", "versions", "geo", "tags", "endpoints", "apiendpoints", "keyendpoints", ""}


def test_mcp_aggregate_rows_per_api(tmp_path: Path, redis_url: str, db: Db) -> None:
    payloads = [bytes.fromhex(c["msgpack_hex"]) for c in CASES]
    push(redis_url, payloads)
    proc = run_once(write_config(tmp_path / "pump.json", redis_url, {"magg": {"type": "sql-mcp-aggregate", "meta": db.meta}}))
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = {(r["dimension"], r["dimension_value"]): r for r in db.dicts("SELECT * FROM tyk_mcp_aggregated")}
    (case,) = [c for c in CASES if c["go_json"]["mcp_stats"]["is_mcp"]]
    doc = case["go_json"]
    stats = doc["mcp_stats"]
    mcp_dims = {k for k in rows if k[0] in ("methods", "primitives", "names")}
    assert mcp_dims == {
        ("methods", stats["jsonrpc_method"]),
        ("primitives", stats["primitive_type"]),
        ("names", f"{stats['primitive_type']}_{stats['primitive_name']}"),
    }
    assert rows[("names", f"{stats['primitive_type']}_{stats['primitive_name']}")]["counter_human_identifier"] == stats["primitive_name"]
    for (dimension, value), row in rows.items():
        assert row["api_id"] == doc["api_id"] and row["org_id"] == doc["org_id"] and row["counter_hits"] == 1
        assert row["id"] == f"{row['timestamp']}{doc['api_id']}{dimension}{value}".encode().hex()
    assert ("apiid", doc["api_id"]) in rows and ("", "total") in rows


GRAPH_CASES = json.loads((ROOT / "tests/fixtures/tyk/graph_aggregates.json").read_text())["cases"]


@pytest.mark.parametrize("case", GRAPH_CASES, ids=[c["name"] for c in GRAPH_CASES])
def test_tyks_graph_and_mcp_aggregate_rows_through_the_pipeline(tmp_path: Path, redis_url: str, db: Db, case: dict[str, Any]) -> None:
    """tests/fixtures/tyk/graph_aggregates.json (Tyk's AggregateGraphData / AggregateMCPData) through
    ``pump run --once`` into each database: every row and column as Go computed it."""
    push(redis_url, [bytes.fromhex(r["msgpack_hex"]) for r in case["records"]])
    kind = "sql-mcp-aggregate" if case["kind"] == "mcp" else "sql-graph-aggregate"
    meta = {**db.meta, "store_analytics_per_minute": case["aggregation_time"] != 60}
    proc = run_once(write_config(tmp_path / "pump.json", redis_url, {"agg": {"type": kind, "meta": meta}}))
    assert proc.returncode == 0, proc.stderr[-4000:]
    table = "tyk_mcp_aggregated" if case["kind"] == "mcp" else "tyk_graph_aggregated"
    got = {r["id"]: r for r in db.dicts(f"SELECT * FROM {table}")}
    want = {row["columns"]["id"]: {**row["columns"], "counter_error_map": "{}", "counter_error_list": "[]"} for row in case["sql_rows"]}
    assert set(got) == set(want)
    for rid, columns in want.items():
        for column, value in columns.items():
            have, where = got[rid][column], (columns["dimension"], columns["dimension_value"], column)
            if column == "counter_last_time":
                have = have if isinstance(have, datetime) else datetime.fromisoformat(have)
                assert have == go_time_us(value), where
            elif isinstance(value, float):
                assert have == pytest.approx(value, rel=1e-15), where
            else:
                assert have == value, where
