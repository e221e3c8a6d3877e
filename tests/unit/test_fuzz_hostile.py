"""Hostile records through decode and every sink's document/row builder (issue 9, "Tests that
keep it so").

A gateway payload is a msgpack map keyed by Go field names (``pump.decode.msgpack.go_fields``).
Here every field — nested ones too — may hold a value of any msgpack type: huge and negative
integers (up to the 64-bit limits of the wire format, beyond Go's int64), NaN and infinities,
strings with NUL bytes, newlines, SQL, invalid UTF-8 (as msgpack *str*, which only a hand-made
encoder can write), binaries, lists, maps, timestamps, extension types; org ids such as ``a$b``,
``x\\x00y``, ``../../etc`` or 1,500 characters; and payloads that are not msgpack at all.

The properties:

* decoding yields a :class:`~pump.record.Record` or raises :class:`~pump.errors.DecodeError`
  with a reason, never another exception;
* every builder turns a decoded record into its output (CSV row, SQL row and COPY line, BSON
  document, Elasticsearch JSON, HTTP/Kafka/syslog message, stdout line, StatsD lines, aggregate
  rows and Mongo updates) or raises the data error the delivery layer dead-letters
  (:class:`~pump.errors.BatchDataError`), never another exception; and the output is sound: one
  CSV row of 42 columns, one COPY line, one stdout line, BSON that encodes, JSON without NaN.

Deterministic (``derandomize``, no example database) and bounded, so it runs the same in CI.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sqlite3
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import bson
import msgpack
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pump.aggregate import BucketClock, aggregate_records, as_change
from pump.aggregate.sql_rows import build_rows
from pump.decode import msgpack as mp
from pump.errors import BatchDataError, DecodeError
from pump.record import Record
from pump.sinks.csv import csv_text
from pump.sinks.elasticsearch.bulk import encode_document
from pump.sinks.elasticsearch.config import Meta as EsMeta
from pump.sinks.elasticsearch.document import DocumentBuilder
from pump.sinks.http.config import Meta as HttpMeta
from pump.sinks.http.sink import HttpSink
from pump.sinks.kafka.message import Encoder as KafkaEncoder
from pump.sinks.mongo.documents import to_document
from pump.sinks.mongo.errors import collection_name_problem, map_error
from pump.sinks.mongo.selective import collection_for
from pump.sinks.sql import raw
from pump.sinks.sql.statements import copy_rows, sqlite_params
from pump.sinks.statsd.config import STATSD_TAGS, DogMeta
from pump.sinks.statsd.config import Meta as StatsdMeta
from pump.sinks.statsd.lines import dog_lines, statsd_lines
from pump.sinks.stdout import Meta as StdoutMeta
from pump.sinks.stdout import StdoutSink
from pump.sinks.syslog.config import Meta as SyslogMeta
from pump.sinks.syslog.message import Encoder as SyslogEncoder
from tests.helpers import RawStr, make_record, pack

# --------------------------------------------------------------------------- hostile values

INT64_MIN, INT64_MAX, UINT64_MAX = -(1 << 63), (1 << 63) - 1, (1 << 64) - 1

HOSTILE_ORGS = ["a$b", "x\x00y", "../../etc", "o" * 1500, "", ".", "a..b", "z.", "é" * 300, "$", "\n", "\ufffd"]
HOSTILE_TEXT = [
    "'; DROP TABLE tyk_analytics; --",
    "1' OR '1'='1",
    "\\.",
    "\\",
    "a\tb",
    "a\nb",
    "a\r\nb",
    "\x00",
    "x\x00y",
    '"quoted", comma',
    " leading space",
    "\u2028\u2029",
    "<script>&</script>",
    "%s%d%!",
    "$where",
    '{"$gt": ""}',
    ']"\\',
    "\ud800",  # a lone surrogate cannot be UTF-8: msgpack refuses to write it, so it never arrives
]

ints = st.one_of(
    st.sampled_from([0, 1, -1, 200, 429, -1, 1 << 31, -(1 << 31), INT64_MIN, INT64_MAX, INT64_MAX + 1, UINT64_MAX, 1 << 53]),
    st.integers(min_value=INT64_MIN, max_value=UINT64_MAX),
)
floats = st.one_of(st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e308, -1e308, 5e-324, 90.0, 180.5]), st.floats())
texts = st.one_of(
    st.sampled_from(HOSTILE_TEXT[:-1] + HOSTILE_ORGS),
    st.text(st.characters(blacklist_categories=["Cs"]), max_size=40),
)
raw_strs = st.one_of(
    st.sampled_from([b"\xff", b"caf\xe9", b"\xc3\x28", b"\xed\xa0\x80", b"a\x00\xfe\nb", b"\xf8\x88\x80\x80\x80"]),
    st.binary(max_size=24),
).map(RawStr)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    ints,
    floats,
    texts,
    raw_strs,
    st.binary(max_size=24),
    st.builds(msgpack.Timestamp, st.integers(-(1 << 40), 1 << 40), st.integers(0, 999_999_999)),
    st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=8)),
)
anything = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(texts, raw_strs, ints), inner, max_size=4),
    ),
    max_leaves=8,
)
#: Go time values: the right shape with hostile numbers, and everything else.
times = st.one_of(
    st.lists(ints, min_size=2, max_size=2),
    st.sampled_from([[-62135596800, 0], [253402300799, 999_999_999], [253402300800, 0], [-62135596801, 0], [0, -1]]),
    anything,
)

#: Which strategy each path of the map draws from when it is made hostile.
_STRUCTS = {"Geo", "Network", "Latency", "GraphQLStats", "MCPStats"}


def hostile_value(base: Any, key: str) -> st.SearchStrategy[Any]:
    if key in ("TimeStamp", "ExpireAt"):
        return times
    if key == "OrgID":
        return st.one_of(st.sampled_from(HOSTILE_ORGS), anything)
    if isinstance(base, bool):
        return st.one_of(st.booleans(), anything)
    if isinstance(base, int):
        return st.one_of(ints, anything)
    if isinstance(base, float):
        return st.one_of(floats, anything)
    if isinstance(base, str):
        return st.one_of(texts, raw_strs, anything)
    return anything


@st.composite
def hostile_map(draw: st.DrawFn, base: dict[str, Any], depth: int = 0) -> dict[Any, Any]:
    """``base`` (a Go-keyed map) with some fields replaced or removed, nested maps recursively,
    and perhaps unknown keys added."""
    out: dict[Any, Any] = {}
    for key, value in base.items():
        choice = draw(st.sampled_from(["keep", "keep", "hostile", "drop"]))
        if choice == "drop":
            continue
        if isinstance(value, dict) and depth < 2 and choice == "keep":
            out[key] = draw(hostile_map(value, depth + 1))
        elif choice == "hostile":
            out[key] = draw(hostile_value(value, key))
        else:
            out[key] = value
    if depth == 0 and draw(st.booleans()):
        out.update(draw(st.dictionaries(st.one_of(texts, ints, raw_strs), anything, max_size=3)))
    return out


def _graphql_base() -> dict[str, Any]:
    return {
        "Variables": '{"a":1}',
        "RootFields": ["users"],
        "Types": {"User": ["id", "name"]},
        "Errors": [{"Message": "boom", "Path": ["users", 0]}],
        "OperationType": 1,
        "HasErrors": True,
        "IsGraphQL": True,
    }


def _base_fields() -> dict[str, Any]:
    r = make_record(geo_city_names={"en": "Paris"}, geo_location_latitude=48.85, geo_location_longitude=2.35)
    fields = mp.go_fields(r)
    fields["GraphQLStats"] = _graphql_base()
    fields["MCPStats"] = {"IsMCP": False, "JSONRPCMethod": "tools/call", "PrimitiveType": "tool", "PrimitiveName": "x"}
    return fields


BASE = _base_fields()


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["map", "map", "map", "map", "bytes", "truncated", "value"]))
    if kind == "bytes":
        return draw(st.binary(max_size=64))
    if kind == "value":
        return pack(draw(anything))
    data = pack(draw(hostile_map(BASE)))
    if kind == "truncated":
        return data[: draw(st.integers(0, max(0, len(data) - 1)))]
    return data


#: Zones a pump may run in: half-hour and 45-minute offsets, both ends of the date line.
ZONES = [None, ZoneInfo("UTC"), ZoneInfo("Asia/Kolkata"), ZoneInfo("America/St_Johns"), ZoneInfo("Asia/Kathmandu"),
         ZoneInfo("Australia/Adelaide"), ZoneInfo("Pacific/Kiritimati"), ZoneInfo("Etc/GMT+12"), ZoneInfo("Europe/Amsterdam")]  # fmt: skip


# --------------------------------------------------------------------------- the builders

HTTP_FORMATS = ("ndjson", "json-array", "splunk", "logzio", "moesif")

_ES = [DocumentBuilder(EsMeta.model_validate(m)) for m in (
    {}, {"extended_stats": True, "decode_base64": True, "rolling_index": True, "index_per_kind": True, "generate_id": True},
)]  # fmt: skip
_HTTP = [HttpSink("hook", HttpMeta.model_validate({"url": "http://127.0.0.1:9/{api_id}", "format": f})) for f in HTTP_FORMATS]
_KAFKA = KafkaEncoder({"zone": "eu"})
_SYSLOG = [
    SyslogEncoder(SyslogMeta.model_validate(m))
    for m in ({"transport": "udp"}, {"transport": "tcp", "framing": "lf"}, {"transport": "tcp", "format": "json", "framing": "lf"})
]
_STATSD = [
    statsd_lines(StatsdMeta.model_validate({"fields": ["request_time", "latency_total"], "tags": list(STATSD_TAGS)})),
    statsd_lines(StatsdMeta.model_validate({"separated_method": True, "tags": ["path", "method", "org_id"]})),
    dog_lines(DogMeta.model_validate({})),
    dog_lines(DogMeta.model_validate({"tags": ["method", "response_code", "api_name", "org_id", "tracked", "path", "oauth_id"]})),
]
_STDOUT = [StdoutSink("out", StdoutMeta(format=f)) for f in ("text", "json")]
_SQLITE = sqlite3.connect(":memory:")
#: Columns of tyk_analytics: Tyk's 52 (issue 11 added city names, GraphQL and MCP stats) + our id.
_RAW_COLUMNS = 53
_SQLITE.execute(f"CREATE TABLE t ({', '.join(f'c{i}' for i in range(_RAW_COLUMNS))})")


def check_csv(r: Record) -> None:
    rows = list(csv.reader(io.StringIO(csv_text([r]), newline="")))
    assert len(rows) == 1 and len(rows[0]) == 42, rows


def check_sql(r: Record) -> None:
    values = raw.row_values(r)
    assert len(values) == _RAW_COLUMNS == len(raw.COLUMN_NAMES)
    for v in values:
        assert isinstance(v, (str, int, float, bool)), v
        if isinstance(v, int):
            assert INT64_MIN <= v <= INT64_MAX, f"{v} does not fit a BIGINT column"
    line = raw.copy_text([r])
    assert line.endswith("\n") and line.count("\n") == 1 and line.count("\t") == _RAW_COLUMNS - 1 and "\x00" not in line
    raw.utf8(line)
    _SQLITE.execute(f"INSERT INTO t VALUES ({', '.join('?' * _RAW_COLUMNS)})", raw.sqlite_row(r))
    raw.day_key(r)


def check_sql_aggregate(r: Record) -> None:
    for sharding in (False, True):
        tables = build_rows([r, r], per_minute=sharding, sharding=sharding)
        for rows in tables.values():
            copy_rows(rows)
            for row in rows:
                sqlite_params(row)


def bson_encode(doc: dict[str, Any]) -> bytes:
    """``bson.encode`` as the Mongo sinks meet its errors: through their one error mapping, which
    must call what the data caused a data error (dead-letter), never an outage (retry forever)."""
    try:
        return bson.encode(doc)
    except Exception as exc:
        raise map_error(exc, "encode") from exc


def check_mongo(r: Record) -> None:
    bson_encode(to_document(r))  # a NUL in a city name's key: a data error
    collection_name_problem("tyk_analytics", collection_for(r.org_id))


def check_mongo_aggregate(r: Record) -> None:
    for agg in aggregate_records([r, r], BucketClock(60)).values():
        bson_encode(as_change(agg))  # a NUL in a tag or key is a BSON key error: a data error


def check_elasticsearch(r: Record) -> None:
    for builder in _ES:
        index, _doc_id, doc = builder.entry(r)
        assert index
        json.dumps(doc, allow_nan=False)
        orjson.loads(encode_document(doc))


def check_http(r: Record) -> None:
    """The HTTP sink's plan: each record is in a request, or refused with a reason (dead-lettered)."""
    for sink in _HTTP:
        requests, rejected = sink.plan([r])
        if rejected:
            assert list(rejected) == [0] and rejected[0] and not requests
            continue
        ((_url, items),) = requests
        json.loads(items[0][1])


def check_kafka(r: Record) -> None:
    json.loads(_KAFKA.value(r))
    _KAFKA.key(r)


def check_syslog(r: Record) -> None:
    for enc in _SYSLOG:
        message = enc.message(r)
        framed = enc.frame(message)
        if enc.lf:
            assert framed.count(b"\n") == 1, framed


def check_stdout(r: Record) -> None:
    for sink in _STDOUT:
        out = sink.render([r, r])
        assert out.count(b"\n") == 2 and out.endswith(b"\n"), out
        if sink.meta.format == "json":
            for line in out.splitlines():
                json.loads(line)


def check_statsd(r: Record) -> None:
    for lines in _STATSD:
        for line in lines([r]):
            assert b"\n" not in line and b"\r" not in line, line


BUILDERS: dict[str, Callable[[Record], None]] = {
    "csv": check_csv,
    "sql": check_sql,
    "sql_aggregate": check_sql_aggregate,
    "mongo": check_mongo,
    "mongo_aggregate": check_mongo_aggregate,
    "elasticsearch": check_elasticsearch,
    "http": check_http,
    "kafka": check_kafka,
    "syslog": check_syslog,
    "stdout": check_stdout,
    "statsd": check_statsd,
}


def decode(raw_bytes: bytes) -> Record | None:
    """The decoder's contract: a Record, or DecodeError with a reason; anything else fails."""
    try:
        return mp.decode_record(raw_bytes)
    except DecodeError as exc:
        assert str(exc), "a DecodeError must carry a reason"
        return None


FUZZ = settings(
    max_examples=int(os.environ.get("PUMP_FUZZ_EXAMPLES", "600")),
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ
@given(payload=payloads(), zone=st.sampled_from(ZONES))
def test_hostile_payloads_decode_or_fail_with_a_reason_and_every_builder_copes(payload: bytes, zone: Any) -> None:
    r = decode(payload)
    if r is None:
        return
    r.tz = zone
    for name, check in BUILDERS.items():
        try:
            check(r)
        except BatchDataError:
            pass  # the sink's data error: the record is dead-lettered with its reason
        except Exception as exc:
            raise AssertionError(f"{name} builder crashed on {r!r}: {type(exc).__name__}: {exc}") from exc


# --------------------------------------------------------------------------- pinned cases

#: Cases the generator found once, kept so they never come back (each is one Go field).
PINNED_DATA_ERRORS = {
    "int beyond int64": {"ContentLength": INT64_MAX + 1},
    "uint64 max": {"RequestTime": UINT64_MAX},
    "nested int beyond int64": {"Latency": {"Total": UINT64_MAX}},
    "network beyond int64": {"Network": {"BytesIn": INT64_MAX + 1}},
    "graphql stats not typed": {"GraphQLStats": {"IsGraphQL": "yes"}},
    "graphql errors not a list": {"GraphQLStats": {"Errors": 5}},
    "graphql operation type a string": {"GraphQLStats": {"OperationType": "query"}},
    "mcp stats not typed": {"MCPStats": {"IsMCP": 1}},
    "mcp method not a string": {"MCPStats": {"JSONRPCMethod": ["x"]}},
}


@pytest.mark.parametrize("fields", PINNED_DATA_ERRORS.values(), ids=PINNED_DATA_ERRORS.keys())
def test_values_go_could_not_decode_are_data_errors_with_the_field_named(fields: dict[str, Any]) -> None:
    payload = {**BASE, **fields}
    with pytest.raises(DecodeError) as caught:
        mp.decode_record(pack(payload))
    assert next(iter(fields)) in str(caught.value)


@pytest.mark.parametrize("value", [INT64_MIN, INT64_MAX, 0])
def test_int64_limits_themselves_decode(value: int) -> None:
    r = mp.decode_record(pack({**BASE, "ContentLength": value, "Latency": {"Total": value}}))
    assert (r.content_length, r.latency_total) == (value, value)
    for check in BUILDERS.values():
        check(r)


@pytest.mark.parametrize("zone", ["Asia/Kolkata", "America/St_Johns", "Asia/Kathmandu", "Pacific/Kiritimati", "Etc/GMT+12"])
@pytest.mark.parametrize("sec", [-62135596800, 253402300799])
def test_first_and_last_second_go_can_send_format_in_every_zone(zone: str, sec: int) -> None:
    r = mp.decode_record(pack({**BASE, "TimeStamp": [sec, 999_999_999], "ExpireAt": [sec, 0]}))
    r.tz = ZoneInfo(zone)
    for check in BUILDERS.values():
        check(r)


def test_a_newline_in_any_text_field_keeps_one_stdout_text_line_per_record() -> None:
    r = make_record(path="/a\nb", host="h\r\nx", api_id="a\nb", org_id="o\n", api_key="k\n")
    out = _STDOUT[0].render([r])
    assert out.count(b"\n") == 1 and out.endswith(b"\n"), out


@pytest.mark.parametrize("lat, lon", [(math.nan, 2.35), (48.85, math.nan), (math.inf, -math.inf), (math.nan, math.nan)])
def test_non_finite_coordinates_are_stored_as_zero_in_mongo(lat: float, lon: float) -> None:
    r = mp.decode_record(pack({**BASE, "Geo": {**BASE["Geo"], "Location": {"Latitude": lat, "Longitude": lon, "TimeZone": "x"}}}))
    loc = to_document(r)["geo"]["location"]
    expected = (lat if math.isfinite(lat) else 0.0, lon if math.isfinite(lon) else 0.0)
    assert (loc["latitude"], loc["longitude"]) == expected
    bson.encode(to_document(r))
