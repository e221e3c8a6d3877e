"""Elasticsearch sink, pure parts: documents, index names, ids (incl. Tyk's murmur3 id)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from pump.decode import msgpack as mp
from pump.sinks.elasticsearch.config import Meta
from pump.sinks.elasticsearch.document import DocumentBuilder, decode_raw, kind_of, record_day, timestamp_text
from pump.sinks.elasticsearch.tykid import go_string, murmur3_64, tyk_document_id
from tests.helpers import T0, make_record


def builder(**meta: Any) -> DocumentBuilder:
    return DocumentBuilder(Meta.model_validate(meta))


# --- Tyk's document ------------------------------------------------------------------------------


def test_document_has_tyk_fields_with_tyk_values() -> None:
    r = make_record(oauth_id="oa", alias="bob", content_length=321, tags=["a", "b"], request_time=17)
    doc = builder(extra_fields=False).document(r)
    assert doc == {
        "@timestamp": "2024-01-15T13:45:12.123456Z",
        "http_method": "GET",
        "request_uri": "/users/42",
        "request_uri_full": "/users/42",
        "response_code": 200,
        "ip_address": "172.18.0.1",
        "api_key": "00000000",
        "api_version": "Non Versioned",
        "api_name": "Users API",
        "api_id": "727dad853a8a45f64ab981154d1ffdad",
        "org_id": "5e9d9544a1dcd60001d0ed20",
        "oauth_id": "oa",
        "request_time_ms": 17,
        "alias": "bob",
        "content_length": 321,
        "tags": ["a", "b"],
    }


def test_nil_tags_stay_null_like_go() -> None:
    assert builder().document(make_record(tags=None))["tags"] is None


def test_extended_stats_adds_raw_fields_and_user_agent() -> None:
    raw = base64.b64encode(b"GET / HTTP/1.1\r\n\r\n").decode()
    r = make_record(raw_request=raw, raw_response="", user_agent="curl/8")
    doc = builder(extended_stats=True).document(r)
    assert (doc["raw_request"], doc["raw_response"], doc["user_agent"]) == (raw, "", "curl/8")
    assert "raw_request" not in builder().document(r)


def test_decode_base64_only_with_extended_stats() -> None:
    raw = base64.b64encode(b"GET / HTTP/1.1\r\n\r\n").decode()
    r = make_record(raw_request=raw, raw_response=base64.b64encode(b"\xffok").decode())
    doc = builder(extended_stats=True, decode_base64=True).document(r)
    assert doc["raw_request"] == "GET / HTTP/1.1\r\n\r\n"
    assert doc["raw_response"] == "\ufffdok"
    assert "raw_request" not in builder(decode_base64=True).document(r)


def test_decode_raw_keeps_invalid_base64_as_sent() -> None:
    assert decode_raw("not base64!") == "not base64!"
    assert decode_raw("") == ""


def test_mcp_fields_only_for_mcp_records() -> None:
    mcp = {"IsMCP": True, "JSONRPCMethod": "tools/call", "PrimitiveType": "tool", "PrimitiveName": "weather"}
    doc = builder().document(make_record(mcp_stats=mcp))
    assert (doc["mcp_method"], doc["mcp_primitive_type"], doc["mcp_primitive_name"]) == ("tools/call", "tool", "weather")
    assert "mcp_method" not in builder().document(make_record(mcp_stats={"IsMCP": False, "JSONRPCMethod": "x"}))


def test_extras_latencies_host_kind_and_geo_point() -> None:
    r = make_record(geo_location_latitude=51.5085, geo_location_longitude=-0.1257, geo_country_iso_code="GB", response_code=503)
    doc = builder().document(r)
    assert doc["latency_total_ms"] == 12 and doc["latency_upstream_ms"] == 10 and doc["latency_gateway_ms"] == 2
    assert doc["host"] == "api.example.com"
    assert doc["event_kind"] == "errors"
    assert doc["geo_country_iso_code"] == "GB"
    assert doc["geo_location"] == {"lat": 51.5085, "lon": -0.1257}


def test_no_geo_point_for_go_zero_location_or_out_of_range() -> None:
    assert "geo_location" not in builder().document(make_record())
    assert "geo_location" not in builder().document(make_record(geo_location_latitude=95.0, geo_location_longitude=1.0))
    # a point on the equator or the meridian is real data
    assert builder().document(make_record(geo_location_latitude=0.0, geo_location_longitude=32.5))["geo_location"] == {
        "lat": 0.0,
        "lon": 32.5,
    }


def test_documents_serialise_with_orjson() -> None:
    import orjson

    doc = builder(extended_stats=True).document(make_record(tags=None, geo_location_latitude=1.5, geo_location_longitude=2.5))
    assert json.loads(orjson.dumps(doc)) == doc


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (200, "requests"),
        (304, "requests"),
        (-1, "requests"),
        (0, "requests"),
        (429, "throttled"),
        (403, "errors"),
        (404, "errors"),
        (500, "errors"),
    ],
)
def test_kind_of(code: int, kind: str) -> None:
    assert kind_of(code) == kind


# --- times ---------------------------------------------------------------------------------------


def test_timestamp_text_is_go_rfc3339_nano() -> None:
    ns = int(T0.timestamp()) * 1_000_000_000
    assert timestamp_text(ns, UTC) == "2024-01-15T13:45:12Z"
    assert timestamp_text(ns + 120_000_000, UTC) == "2024-01-15T13:45:12.12Z"
    assert timestamp_text(ns + 1, UTC) == "2024-01-15T13:45:12.000000001Z"
    plus2 = timezone(timedelta(hours=2))
    assert timestamp_text(ns + 5_000, plus2) == "2024-01-15T15:45:12.000005+02:00"
    minus = timezone(-timedelta(hours=3, minutes=30))
    assert timestamp_text(ns, minus) == "2024-01-15T10:15:12-03:30"


def test_record_day_uses_the_record_zone() -> None:
    late = int(datetime(2024, 1, 15, 23, 30, tzinfo=UTC).timestamp()) * 1_000_000_000
    assert record_day(late, UTC) == "2024.01.15"
    assert record_day(late, timezone(timedelta(hours=2))) == "2024.01.16"


# --- index names -----------------------------------------------------------------------------------


def test_plain_index_name() -> None:
    assert builder(index_name="tyk_analytics").index_for(make_record()) == "tyk_analytics"


def test_rolling_index_uses_record_date_not_wall_clock() -> None:
    b = builder(rolling_index=True)
    assert b.index_for(make_record(timestamp=datetime(2020, 2, 29, 23, 59, 59, tzinfo=UTC))) == "tyk_analytics-2020.02.29"
    assert b.index_for(make_record(timestamp=datetime(2020, 3, 1, 0, 0, tzinfo=UTC))) == "tyk_analytics-2020.03.01"
    today = datetime.now(UTC).strftime("%Y.%m.%d")
    assert not b.index_for(make_record()).endswith(today)


def test_rolling_index_in_a_protobuf_record_zone() -> None:
    zone = timezone(timedelta(hours=-5))
    r = make_record(timestamp=datetime(2024, 1, 16, 2, 0, tzinfo=UTC).astimezone(zone))
    assert builder(rolling_index=True).index_for(r) == "tyk_analytics-2024.01.15"


def test_index_per_kind_with_rolling() -> None:
    b = builder(index_name="gw", index_per_kind=True, rolling_index=True)
    assert b.index_for(make_record(response_code=201)) == "gw_requests-2024.01.15"
    assert b.index_for(make_record(response_code=502)) == "gw_errors-2024.01.15"
    assert b.index_for(make_record(response_code=429)) == "gw_throttled-2024.01.15"
    assert builder(index_name="gw", index_per_kind=True).index_for(make_record(response_code=404)) == "gw_errors"


def test_mcp_records_go_to_mcp_index_when_set() -> None:
    mcp = make_record(mcp_stats={"IsMCP": True})
    assert builder(mcp_index_name="mcp").index_for(mcp) == "mcp"
    assert builder(mcp_index_name="mcp").index_for(make_record()) == "tyk_analytics"
    assert builder().index_for(mcp) == "tyk_analytics"
    assert builder(mcp_index_name="mcp", rolling_index=True, index_per_kind=True).index_for(mcp) == "mcp_requests-2024.01.15"


def test_template_patterns_cover_every_name_written() -> None:
    b = builder(index_name="gw", mcp_index_name="gwmcp", index_per_kind=True, rolling_index=True)
    patterns = b.index_patterns()
    assert len(patterns) == 12
    assert {"gw_requests-*", "gw_errors", "gwmcp_throttled-*"} <= set(patterns)
    assert builder(index_name="gw").index_patterns() == ["gw"]
    assert builder(index_name="gw", rolling_index=True).index_patterns() == ["gw", "gw-*"]


# --- ids -------------------------------------------------------------------------------------------


def test_default_id_is_the_record_id_of_the_payload() -> None:
    raw = mp.encode_record(make_record())
    r = mp.decode_record(raw)
    assert builder().id_for(r) == mp.record_id(raw)
    assert len(r.record_id) == 32 and int(r.record_id, 16) >= 0


# Vectors printed by Go: spaolacci/murmur3 v1.1.0 New64().Sum(nil), and json.Marshal(string(sum)).
MURMUR_VECTORS = [
    (b"", 0x0000000000000000),
    (b"a", 0x85555565F6597889),
    (b"hello", 0xCBD8A7B341BD9B02),
    (b"0123456789abcdef", 0x4BE06D94CF4AD1A7),
    (b"0123456789abcdef0", 0xEB24AE8785A5C075),
    (b"The quick brown fox jumps over the lazy dog", 0xE34BBC7BBC071B6C),
]


@pytest.mark.parametrize(("data", "expected"), MURMUR_VECTORS)
def test_murmur3_64_matches_go(data: bytes, expected: int) -> None:
    assert murmur3_64(data) == expected


TYK_ID_VECTORS = [
    ((1705326312123456000, "GET", "/users/42", "172.18.0.1", "727dad853a8a45f64ab981154d1ffdad", "", 12, ""), '"\\u00101f`6\\ufffdt3"'),
    ((1705326312123457000, "POST", "/items/1", "10.0.0.1", "api", "oauth", 7, "alias"), '"\\u0004˾\\ufffd\\ufffd\\ufffd6\\ufffd"'),
    ((-62135596800 * 10**9, "", "", "", "", "", 0, ""), '"7M\\u0014\\ufffd/\\u0000\\ufffd\\ufffd"'),
    ((1705326312123456000, "GET", "/ünïcode/路径", "::1", "x", "", 123456789, "bob"), '"n\\ufffd\\ufffd\\ufffd\\ufffdh\\ufffd\\ufffd"'),
    (
        (1705326312123459000, "GET", "/items/3", "172.18.0.1", "727dad853a8a45f64ab981154d1ffdad", "", 12, ""),
        '"\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffdZX"',
    ),
]


@pytest.mark.parametrize(("fields", "go_json"), TYK_ID_VECTORS)
def test_tyk_document_id_matches_go(fields: tuple[Any, ...], go_json: str) -> None:
    assert tyk_document_id(*fields) == json.loads(go_json)


def test_generate_id_uses_tyk_id_of_the_record() -> None:
    r = make_record()  # T0 = 2024-01-15T13:45:12.123456Z, the first Go vector
    assert builder(generate_id=True).id_for(r) == json.loads('"\\u00101f`6\\ufffdt3"')


def test_go_string_replaces_each_invalid_byte() -> None:
    # Python's errors="replace" would merge "\xe1\xa4" into one U+FFFD; Go makes two.
    assert go_string(b"\xde\xe1\xa46\xb7") == "\ufffd\ufffd\ufffd6\ufffd"
    assert go_string(b"\xcb\xbe") == "˾"
    assert go_string(b"\xed\xa0\x80") == "\ufffd\ufffd\ufffd"  # a UTF-16 surrogate is not UTF-8
    assert go_string(b"\xf0\x9f\x98\x80!") == "😀!"
    assert go_string(b"\xc0\xaf") == "\ufffd\ufffd"  # overlong


@pytest.mark.parametrize(
    "zone_name",
    ["UTC", "Europe/London", "America/St_Johns", "Asia/Kathmandu", "Australia/Lord_Howe", "Europe/Amsterdam", "America/Sao_Paulo"],
)
def test_timestamp_and_day_match_datetime_across_dst_and_odd_offsets(zone_name: str) -> None:
    from zoneinfo import ZoneInfo

    from pump.gotime import go_rfc3339, time_from_unix

    zone = ZoneInfo(zone_name)
    starts = [
        datetime(2024, 3, 30, tzinfo=UTC),  # EU spring forward
        datetime(2024, 10, 26, tzinfo=UTC),  # EU fall back
        datetime(2024, 4, 6, 12, tzinfo=UTC),  # Lord Howe (30-minute shift), southern autumn
        datetime(1880, 6, 1, tzinfo=UTC),  # local mean time: offsets in seconds
    ]
    for start in starts:
        base = int(start.timestamp())
        for step in range(0, 3 * 86400, 97):
            sec = base + step
            ns = sec * 1_000_000_000 + 123_000
            dt = time_from_unix(sec, 123_000, zone)
            assert timestamp_text(ns, zone) == go_rfc3339(dt, ns), (zone_name, sec)
            assert record_day(ns, zone) == dt.strftime("%Y.%m.%d"), (zone_name, sec)


@pytest.mark.parametrize("meta", [{}, {"rolling_index": True, "index_per_kind": True, "generate_id": True}, {"rolling_index": True}])
def test_entry_equals_the_separate_parts(meta: dict[str, Any]) -> None:
    b = builder(**meta)
    for r in (make_record(), make_record(response_code=429, timestamp=T0 + timedelta(days=3, hours=11, seconds=7))):
        assert b.entry(r) == (b.index_for(r), b.id_for(r), b.document(r))


_OPTION_SETS = [
    {},
    {"extra_fields": False},
    {"extended_stats": True},
    {"extended_stats": True, "decode_base64": True, "rolling_index": True},
    {"rolling_index": True, "event_kind_index": True, "mcp_index_name": "mcp_idx"},
    {"generate_id": True, "extra_fields": False, "extended_stats": True},
]


def _varied_records() -> list[Any]:
    raw = base64.b64encode(b"GET / HTTP/1.1\r\n\xff\xfe").decode()
    mcp = {"IsMCP": True, "JSONRPCMethod": "tools/call", "PrimitiveType": "tool", "PrimitiveName": "search"}
    return [
        make_record(),
        make_record(response_code=429, timestamp=T0 + timedelta(days=3, hours=11, seconds=7)),
        make_record(geo_location_latitude=51.5085, geo_location_longitude=-0.1257, geo_country_iso_code="GB"),
        make_record(geo_location_latitude=95.0, geo_location_longitude=1.0),
        make_record(raw_request=raw, raw_response="not base64 !", user_agent="ua"),
        make_record(mcp_stats=mcp, geo_location_latitude=1.0, geo_location_longitude=2.0),
        make_record(mcp_stats={"IsMCP": False, "JSONRPCMethod": "x"}, path="/caf\udcc3"),
    ]


@pytest.mark.parametrize("meta", _OPTION_SETS)
def test_generated_entry_builds_the_same_document_in_the_same_key_order(meta: dict[str, Any]) -> None:
    """The generated ``entry`` (one dict literal) must give the very bytes the step-by-step
    builder gives: same index, id, fields, values and field order."""
    b = builder(**meta)
    for r in _varied_records():
        index, doc_id, doc = b.entry(r)
        assert (index, doc_id) == (b.index_for(r), b.id_for(r))
        assert list(doc.items()) == list(b.document(r).items())
