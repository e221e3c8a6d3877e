"""The per-batch shortcuts of the SQL COPY encoders render exactly what the per-value rules do.

Raw pump: gateway records carry zero-valued GraphQL/MCP structs (not absent ones), which must
render as the constant "no stats" fields; city maps are cached by their text items only.
Aggregate pump: zero counter runs and shared datetimes are rendered once, row ids are built from
a per-aggregate prefix; every shortcut is checked against the plain rendering.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from pump import schema
from pump.aggregate.engine import aggregate_records
from pump.aggregate.sql_rows import SQL_COLUMNS, AggregateRow, aggregate_rows, row_id
from pump.decode.msgpack import decode_record, encode_record
from pump.sinks.sql import raw
from pump.sinks.sql.columns import city_names_json
from pump.sinks.sql.statements import copy_rows
from tests.helpers import make_record, numbered


def _zero(go_type: str) -> dict[str, object]:
    return {s.go: s.zero for s in schema.SUBFIELDS[go_type]}


def test_gateway_records_with_zero_stats_structs_take_the_constant() -> None:
    records = [decode_record(encode_record(r)) for r in numbered(5)]
    assert all(r.graphql_stats and r.mcp_stats for r in records), "the gateway sends both structs, zero-valued"
    for r in records:
        assert raw.stats_copy(r) is raw._NO_STATS_COPY
        assert raw.copy_line(r) == raw.copy_line_slow(r)


def test_stats_equal_to_zero_in_another_type_render_as_zero() -> None:
    gql = {**_zero(schema.GRAPHQL), "OperationType": False, "HasErrors": 0}
    r = make_record(graphql_stats=gql, mcp_stats={**_zero(schema.MCP), "IsMCP": 0}, record_id="a" * 32)
    assert raw.stats_copy(r) is raw._NO_STATS_COPY
    assert raw.copy_line(r) == raw.copy_line_slow(r)


def test_real_stats_are_rendered() -> None:
    gql = {**_zero(schema.GRAPHQL), "IsGraphQL": True, "OperationType": 1, "RootFields": ["users"]}
    r = make_record(graphql_stats=gql, mcp_stats=_zero(schema.MCP), record_id="b" * 32)
    assert raw.stats_copy(r) != raw._NO_STATS_COPY
    assert raw.copy_line(r) == raw.copy_line_slow(r)
    assert raw.copy_text([r]) == raw.copy_line_slow(r)


def test_city_names_cache_keeps_types_apart() -> None:
    assert city_names_json({"en": "Tokyo", "de": "Tokio"}) == '{"de":"Tokio","en":"Tokyo"}'
    assert city_names_json({"de": "Tokio", "en": "Tokyo"}) == '{"de":"Tokio","en":"Tokyo"}'
    assert city_names_json({"en": "<b>"}) == '{"en":"\\u003cb\\u003e"}'
    # 1 == True and hash alike: only all-text maps are cached, so neither takes the other's text.
    assert city_names_json({"en": 1}) == '{"en":1}'  # type: ignore[dict-item]
    assert city_names_json({"en": True}) == '{"en":true}'  # type: ignore[dict-item]
    assert city_names_json({"en": ["a"]}) == '{"en":["a"]}'  # type: ignore[dict-item]
    assert city_names_json({}) == city_names_json(None) == "{}"


def _plain(rows: list[AggregateRow]) -> str:
    return "".join("\t".join(map(str, row)) + "\n" for row in rows)


def _row(i: int, last_time: datetime, **values: object) -> AggregateRow:
    base: dict[str, object] = {c: 0 for c in SQL_COLUMNS}
    base.update(id=f"id{i}", org_id="org", dimension="apiid", dimension_value=f"v{i}", timestamp=1_700_000_000)
    base.update(counter_request_time=1.5, counter_total_request_time=3.0, counter_latency=0.1, counter_upstream_latency=2 / 3)
    base.update(counter_identifier="ident", counter_human_identifier="Hüman", counter_last_time=last_time, counter_hits=i)
    base.update(values)
    return AggregateRow(**base)  # type: ignore[arg-type]


def test_copy_rows_equals_the_plain_rendering() -> None:
    t = datetime(2024, 1, 15, 13, 0, 1, 250000, tzinfo=UTC)
    same_instant = t.astimezone(timezone(timedelta(hours=2)))
    rows = [
        _row(1, t),
        _row(2, t),  # the same datetime object: rendered once
        _row(3, same_instant),  # an equal instant in another zone keeps its own offset
        _row(4, t, counter_bytes_in=10, counter_open_connections=2),
        _row(5, t + timedelta(microseconds=1), code_404=3, code_5x=1),
        _row(6, datetime(2024, 1, 15, tzinfo=UTC), code_1x=1),
        _row(7, t, counter_bytes_out=-1, code_504=7),
    ]
    text = copy_rows(rows)
    assert text == _plain(rows)
    assert text.splitlines()[2].split("\t")[SQL_COLUMNS.index("counter_last_time")] == "2024-01-15 15:00:01.250000+02:00"


def test_copy_rows_with_extra_columns_and_escapes() -> None:
    t = datetime(2024, 1, 15, 13, tzinfo=UTC)
    extra = [(*_row(1, t), "api-1"), (*_row(2, t, code_200=1), "api-2")]
    assert copy_rows(extra) == "".join("\t".join(map(str, row)) + "\n" for row in extra)  # type: ignore[arg-type]
    odd = [_row(1, t, counter_human_identifier="tab\there"), _row(2, t)]
    lines = copy_rows(odd).splitlines()
    assert lines[0].split("\t")[SQL_COLUMNS.index("counter_human_identifier")] == "tab\\there"
    assert lines[1] == _plain([odd[1]]).rstrip("\n")


def test_aggregate_row_ids_equal_row_id() -> None:
    records = [
        make_record(api_key=f"key-{i}", path=p, tags=[f"t.{i}", "ü"], org_id=org)
        for i, (p, org) in enumerate([("/a", "org-1"), ("/ü/x", "org-1"), ("/b", "örg-\udcff"), ("/c", "")])
    ]
    aggs = aggregate_records(records, track_all_paths=True)
    assert aggs
    for agg in aggs.values():
        rows = aggregate_rows(agg)
        assert len(rows) > 5
        for row in rows:
            assert row.id == row_id(row.timestamp, row.org_id, row.dimension, row.dimension_value)
