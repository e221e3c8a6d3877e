"""The record schema table (pump/schema.py) against what Tyk's own Go code produces.

The fixtures come from tests/tools/tykfixtures (Tyk Pump's Go structs, marshalled by Go), so a
wrong name, a wrong nesting or a wrong order in the table fails here, whichever encoder uses it.
"""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

import msgpack
import pytest

from pump import schema
from pump.decode import protobuf as pb
from pump.record import Record

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "tyk"
RECORDS = json.loads((FIXTURES / "records.json").read_text())["cases"]
HEADER = json.loads((FIXTURES / "csv_header.json").read_text())


def paths(doc: dict[str, Any], prefix: str = "", leaves: frozenset[str] = frozenset()) -> list[str]:
    """Dotted key paths of a nested document, in order; keys in ``leaves`` are not descended."""
    out: list[str] = []
    for key, value in doc.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and key not in leaves:
            out += paths(value, f"{path}.", leaves)
        else:
            out.append(path)
    return out


_OPAQUE = frozenset(("names", "Names", "graphql_stats", "mcp_stats", "GraphQLStats", "MCPStats"))


@pytest.mark.parametrize("case", RECORDS[:3], ids=[c["name"] for c in RECORDS[:3]])
def test_json_column_is_go_json_marshal_order(case: dict[str, Any]) -> None:
    assert [f.json for f in schema.columns("json")] == paths(case["go_json"], leaves=_OPAQUE)


@pytest.mark.parametrize("case", RECORDS[:3], ids=[c["name"] for c in RECORDS[:3]])
def test_go_column_is_the_gateways_msgpack_key_order(case: dict[str, Any]) -> None:
    wire = msgpack.unpackb(bytes.fromhex(case["msgpack_hex"]), raw=False, timestamp=0)
    assert [f.go for f in schema.FIELDS] == paths(wire, leaves=_OPAQUE)


def test_csv_column_is_tyks_header() -> None:
    assert [f.csv for f in schema.columns("csv")] == HEADER["field_names"]


def test_proto_column_names_fields_of_the_protobuf_schema() -> None:
    for f in schema.columns("proto"):
        assert f.proto is not None
        table: Any = pb.RECORD
        *parents, leaf = f.proto.split(".")
        for part in parents:
            table = next(sub for name, _, sub in table.values() if name == part)
        assert leaf in {name for name, _, _ in table.values()}, f.attr
    assert {s.proto for s in schema.GRAPHQL_FIELDS} == {name for name, _, _ in pb.GRAPHQL.values()}
    assert {s.proto for s in schema.MCP_FIELDS} == {name for name, _, _ in pb.MCP.values()}


_PY = {
    schema.STRING: str, schema.INT: int, schema.INT64: int, schema.UINT: int, schema.MONTH: int, schema.FLOAT: float,
    schema.BOOL: bool, schema.TAGS: list[str] | None, schema.NAMES: dict[str, str] | None,
    schema.GRAPHQL: dict[str, Any] | None, schema.MCP: dict[str, Any] | None,
}  # fmt: skip


def test_record_attributes_are_the_table_with_its_types() -> None:
    hints = typing.get_type_hints(Record)
    for f in schema.FIELDS:
        if f.type == schema.TIME:
            assert hints[f"{f.attr}_ns"] is int
        else:
            assert hints[f.attr] == _PY[f.type], f.attr


def test_names_are_unique_per_format() -> None:
    for fmt in ("attr", "go", "json", "bson", "sql", "csv", "proto", "es", "msg"):
        names = [getattr(f, fmt) for f in schema.FIELDS if getattr(f, fmt) is not None]
        assert len(names) == len(set(names)), fmt


def test_nested_literal_shares_prefixes_in_first_seen_order() -> None:
    src = schema.nested_literal([("a.x", "1"), ("b", "2"), ("a.y.z", "3")])
    assert eval(src) == {"a": {"x": 1, "y": {"z": 3}}, "b": 2}
    assert list(eval(src)) == ["a", "b"]


def test_generated_code_shows_in_tracebacks() -> None:
    fn = schema.compile_function("boom", "def boom():\n    raise ValueError('x')\n", {"__name__": "t"})
    with pytest.raises(ValueError) as info:
        fn()
    assert "raise ValueError('x')" in "".join(info.traceback[-1].statement.lines)


#: Today's tyk_analytics columns, in order: existing tables (and COPY/INSERT column lists) depend on
#: it, so a change to the schema table that moves, renames or retypes a column fails here.
TYK_ANALYTICS: tuple[tuple[str, str], ...] = (
    ("id", "text"), ("method", "text"), ("host", "text"), ("path", "text"), ("rawpath", "text"),
    ("contentlength", "bigint"), ("useragent", "text"), ("day", "bigint"), ("month", "bigint"),
    ("year", "bigint"), ("hour", "bigint"), ("responsecode", "bigint"), ("apikey", "text"),
    ("timestamp", "timestamptz"), ("apiversion", "text"), ("api_name", "text"), ("apiid", "text"),
    ("orgid", "text"), ("oauthid", "text"), ("requesttime", "bigint"), ("rawrequest", "text"),
    ("rawresponse", "text"), ("ipaddress", "text"), ("geo_country_iso_code", "text"),
    ("geo_city_geoname_id", "bigint"), ("geo_city_names", "text"), ("geo_location_latitude", "numeric"),
    ("geo_location_longitude", "numeric"), ("geo_location_time_zone", "text"),
    ("network_open_connections", "bigint"), ("network_closed_connections", "bigint"),
    ("network_bytes_in", "bigint"), ("network_bytes_out", "bigint"), ("latency_total", "bigint"),
    ("latency_upstream", "bigint"), ("latency_gateway", "bigint"), ("tags", "text"), ("alias", "text"),
    ("trackpath", "bool"), ("expireAt", "timestamptz"), ("originalpath", "text"), ("listenpath", "text"),
    ("graphql_stats_variables", "text"), ("graphql_stats_root_fields", "text"), ("graphql_stats_types", "text"),
    ("graphql_stats_errors", "text"), ("graphql_stats_operation_type", "bigint"), ("graphql_stats_has_errors", "bool"),
    ("graphql_stats_is_graph_ql", "bool"), ("mcp_stats_is_mcp", "bool"), ("mcp_stats_jsonrpc_method", "text"),
    ("mcp_stats_primitive_type", "text"), ("mcp_stats_primitive_name", "text"),
)  # fmt: skip


def test_sql_column_is_the_tyk_analytics_table_in_order() -> None:
    from pump.sinks.sql.columns import RAW_COLUMNS

    assert RAW_COLUMNS == TYK_ANALYTICS


def test_every_sql_column_comes_from_the_schema_table() -> None:
    """Each column is a field's ``sql`` name (or its sub-table's, prefixed) with its Go type's kind."""
    derived: list[tuple[str, str]] = []
    for f in schema.columns("sql"):
        subs = schema.SUBFIELDS.get(f.type)
        if subs is None:
            derived.append((f"{f.sql}", schema.SQL_KINDS[f.type]))
        else:
            derived += [(f"{f.sql}_{s.sql}", schema.SQL_KINDS[s.type]) for s in subs]
    assert derived == list(TYK_ANALYTICS[1:])
    assert schema.BY_ATTR["geo_city_names"].sql == "geo_city_names"


def test_generated_sql_row_reads_every_column_from_its_field() -> None:
    """The generated row has one value per column, and the GraphQL/MCP ones follow the sub-tables."""
    from pump.sinks.sql import raw

    r = Record(
        method="GET",
        geo_city_names={"en": "Zürich", "b": "<&>"},
        graphql_stats={"Variables": "v", "RootFields": ["q"], "Types": {"T": None}, "Errors": [{"Message": "m"}],
                       "OperationType": 2, "HasErrors": True, "IsGraphQL": True},
        mcp_stats={"IsMCP": True, "JSONRPCMethod": "tools/call", "PrimitiveType": "tool", "PrimitiveName": "n"},
    )  # fmt: skip
    row = dict(zip(raw.COLUMN_NAMES, raw.row_values(r), strict=True))
    assert row["geo_city_names"] == '{"b":"\\u003c\\u0026\\u003e","en":"Zürich"}'
    assert [row[c] for c in raw.COLUMN_NAMES[-11:]] == [
        "v", '["q"]', '{"T":[]}', '[{"message":"m","path":[]}]', 2, True, True, True, "tools/call", "tool", "n"
    ]  # fmt: skip
    r.geo_city_names = {"en": "Zürich"}  # nothing COPY must escape: the fast line is the escaped one
    assert raw.copy_line(r) == raw.copy_line_slow(r)
    plain = Record(method="GET")
    assert raw.copy_line(plain).endswith("\t\t[]\t{}\t[]\t0\tf\tf\tf\t\t\t\n")
    assert raw.copy_line(plain) == raw.copy_line_slow(plain)
