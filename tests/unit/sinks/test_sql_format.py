"""Pure parts of the SQL pumps: COPY text, timestamps, text cleaning, sharding keys, the ledger's
split arithmetic, and the upsert statements rendered from the engine's rules."""

from __future__ import annotations

import random
import re
import sqlite3
from datetime import UTC, datetime, timedelta, timezone

import pytest

from pump.aggregate.sql_rows import SQL_COLUMNS, AggregateRow, Merge, update_rules
from pump.decode.msgpack import decode_record, encode_record
from pump.errors import BatchDataError, RetriableError
from pump.gotime import ts_text
from pump.record import Record
from pump.sinks.base import lineage
from pump.sinks.sql import raw
from pump.sinks.sql.aggregate import without_dimensions
from pump.sinks.sql.config import Target
from pump.sinks.sql.errors import map_error
from pump.sinks.sql.ledger import like_prefix, pending_parts
from pump.sinks.sql.schema import checked_table, quote
from pump.sinks.sql.statements import assignments, upsert_text
from pump.sinks.sql.values import clean, utf8
from tests.helpers import make_record, numbered

# --------------------------------------------------------------------------- COPY text


def parse_copy(text: str) -> list[list[str]]:
    """PostgreSQL's COPY text format, read back (the escapes our writer may emit)."""
    assert text.endswith("\n")
    unescape = {"\\\\": "\\", "\\t": "\t", "\\n": "\n", "\\r": "\r"}
    rows = []
    for line in text[:-1].split("\n"):
        rows.append([re.sub(r"\\[\\tnr]", lambda m: unescape[m.group(0)], field) for field in line.split("\t")])
    return rows


def expected_fields(r: Record) -> list[str]:
    out = []
    for value in raw.row_values(r):
        if isinstance(value, bool):
            out.append("t" if value else "f")
        elif isinstance(value, float):
            out.append(repr(value))
        else:
            out.append(clean(str(value)))
    return out


ODD = ["plain", "tab\there", "new\nline", "cr\rret", "back\\slash", "\\N", "nul\x00nul", "ünï 日本 😀", "", "a\\tb", "end\\"]


def test_copy_text_round_trips_every_odd_value() -> None:
    records = [make_record(path=v, user_agent=v[::-1], alias=v, tags=[v, "x"], record_id=f"{i:032x}") for i, v in enumerate(ODD)]
    text = raw.copy_text(records)
    parsed = parse_copy(text)
    assert len(parsed) == len(records)
    for fields, r in zip(parsed, records, strict=True):
        assert len(fields) == len(raw.COLUMN_NAMES)
        assert fields == expected_fields(r)
    assert parsed[6][raw.COLUMN_NAMES.index("path")] == "nul\ufffdnul"


def test_copy_fast_path_is_the_plain_f_string() -> None:
    records = numbered(50)
    for r in records:
        r.record_id = "f" * 32
    assert raw.copy_text(records) == "".join(raw.copy_line(r) for r in records)
    assert parse_copy(raw.copy_text(records)) == [expected_fields(r) for r in records]


def test_copy_line_matches_the_slow_path_for_plain_records() -> None:
    traffic = [decode_record(encode_record(r)) for r in numbered(20, tags=["a", "b"], geo_location_latitude=51.5085)]
    for r in traffic:
        assert raw.copy_line(r) == raw.copy_line_slow(r)


def test_undecodable_bytes_are_replaced_when_encoding() -> None:
    assert utf8("caf\udce9") == "caf\ufffd".encode()
    assert utf8("ok ü") == "ok ü".encode()


def test_clean() -> None:
    assert clean("plain") == "plain"
    assert clean("a\x00b") == "a\ufffdb"
    assert clean("ü\x00") == "ü\ufffd"
    assert clean("caf\udce9") == "caf\ufffd"


def test_tags_json() -> None:
    assert raw.tags_json(None) == raw.tags_json([]) == "[]"
    assert raw.tags_json(["a", 'q"\\']) == '["a","q\\"\\\\"]'
    assert raw.tags_json(["t\udce9"]) == '["t\udce9"]'  # surrogates survive until utf8()/clean()


def test_record_id_of_records_built_in_code_is_the_decoded_id() -> None:
    r = make_record()
    decoded = decode_record(encode_record(r))
    assert raw.rid(r) == decoded.record_id
    assert raw.rid(make_record(path="\udcff")) != raw.rid(make_record(path="x"))  # not encodable: JSON hash


# --------------------------------------------------------------------------- time


@pytest.mark.parametrize("seed", range(5))
def test_ts_text_equals_datetime_formatting(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(2000):
        ns = rng.randint(-62135596800 * 10**9, 253402300799 * 10**9)
        dt = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)
        assert ts_text(ns) == f"{dt.year:04d}-{dt:%m-%d %H:%M:%S}.{dt.microsecond:06d}+00:00"


def test_ts_text_is_understood_by_sqlite_and_python() -> None:
    text = ts_text(1705326312123456789)
    assert datetime.fromisoformat(text) == datetime(2024, 1, 15, 13, 45, 12, 123456, tzinfo=UTC)
    conn = sqlite3.connect(":memory:")
    assert conn.execute("SELECT datetime(?)", (text,)).fetchone() == ("2024-01-15 13:45:12",)
    assert ts_text(-62135596800 * 10**9) == "0001-01-01 00:00:00.000000+00:00"  # Go's zero time


def test_shards_use_the_date_of_the_record_in_its_zone() -> None:
    ts = datetime(2024, 1, 15, 23, 30, tzinfo=UTC)
    utc_rec = Record(timestamp=ts, org_id="o")
    tokyo = Record(timestamp=ts.astimezone(timezone(timedelta(hours=9))), org_id="o")
    groups = raw.group_by_table([utc_rec, tokyo], sharding=True)
    assert {t: len(v) for t, v in groups.items()} == {"tyk_analytics_20240115": 1, "tyk_analytics_20240116": 1}
    assert list(raw.group_by_table([utc_rec, tokyo], sharding=False)) == ["tyk_analytics"]


def test_mcp_records_are_not_written_raw() -> None:
    mcp = Record(org_id="o", mcp_stats={"IsMCP": True})
    assert raw.group_by_table([mcp], sharding=False) == {}


# --------------------------------------------------------------------------- ledger arithmetic


def test_lineage() -> None:
    assert lineage("abc") == ["abc"]
    assert lineage("abc.1.0.r2") == ["abc", "abc.1", "abc.1.0", "abc.1.0.r2"]


def test_pending_parts_follow_the_delivery_split() -> None:
    recs = list(range(10))
    assert pending_parts("b", recs, set()) == [("b", recs)]
    assert pending_parts("b", recs, {"b"}) == []
    assert pending_parts("b.1", recs[5:], {"b"}) == []
    assert pending_parts("b", recs, {"b.0"}) == [("b.1", recs[5:])]
    assert pending_parts("b", recs, {"b.1.0", "b.0.1"}) == [("b.0.0", [0, 1]), ("b.1.1", [7, 8, 9])]
    assert pending_parts("b", recs, {"bb.0"}) == [("b", recs)]  # only real descendants count


def test_like_prefix_escapes_wildcards() -> None:
    assert like_prefix("a_b%c\\.") == "a\\_b\\%c\\\\.%"
    conn = sqlite3.connect(":memory:")
    matches = [s for s in ("a_b.0", "axb.0", "a_b") if conn.execute("SELECT ? LIKE ? ESCAPE '\\'", (s, like_prefix("a_b."))).fetchone()[0]]
    assert matches == ["a_b.0"]


# --------------------------------------------------------------------------- statements


@pytest.mark.parametrize("name", ["tyk_analytics", "tyk_aggregated_20240101", "tyk_uptime_analytics_19991231"])
def test_table_names_accepted(name: str) -> None:
    assert checked_table(name) == name


@pytest.mark.parametrize("name", ['tyk_analytics"; DROP TABLE x; --', "tyk_analytics_2024", "other", "tyk_aggregated_2024010a"])
def test_table_names_refused(name: str) -> None:
    with pytest.raises(ValueError):
        checked_table(name)
    with pytest.raises(ValueError):
        upsert_text(name, postgres=True)


def test_quote_refuses_anything_but_plain_identifiers() -> None:
    assert quote("expireAt") == '"expireAt"'
    with pytest.raises(ValueError):
        quote('a"b')


@pytest.mark.parametrize("postgres", [True, False])
def test_upsert_assigns_every_rule_and_nothing_else(postgres: bool) -> None:
    sets = assignments("tyk_aggregated", postgres)
    assigned = [s.split(" = ", 1)[0].strip('"') for s in sets]
    assert assigned == [r.column for r in update_rules()]
    kept = {"id", "org_id", "dimension", "dimension_value", "timestamp", "counter_identifier", "counter_human_identifier"}
    assert set(SQL_COLUMNS) - set(assigned) == kept
    text = dict(zip(assigned, sets, strict=True))
    t = '"tyk_aggregated"'
    assert text["code_4x"] == f'"code_4x" = {t}."code_4x" + excluded."code_4x"'
    assert text["counter_last_time"] == '"counter_last_time" = excluded."counter_last_time"'
    fn = "GREATEST" if postgres else "max"
    assert text["counter_max_latency"] == f'"counter_max_latency" = {fn}({t}."counter_max_latency", excluded."counter_max_latency")'
    assert "CASE WHEN" in text["counter_latency"] and '"counter_total_latency"' in text["counter_latency"]
    assert {r.merge for r in update_rules()} == {Merge.SUM, Merge.AVG, Merge.MAX, Merge.MIN, Merge.REPLACE}


def test_upsert_placeholders() -> None:
    assert "SELECT" in upsert_text("tyk_aggregated", postgres=True) and "%s" not in upsert_text("tyk_aggregated", postgres=True)
    assert upsert_text("tyk_aggregated", postgres=False).count("?") == len(SQL_COLUMNS)


def test_ignore_aggregations_drops_rows_of_named_dimensions_only() -> None:
    from pump.aggregate.sql_rows import build_rows

    recs = [Record(org_id="o", api_id="a", api_key="k", response_code=500, tags=["t"], timestamp=datetime(2024, 1, 1, tzinfo=UTC))]
    tables = build_rows(recs)

    def dims(ts: dict[str, list[AggregateRow]]) -> list[str]:
        return sorted({r.dimension for rows in ts.values() for r in rows})

    assert dims(tables) == ["", "apiid", "apikeys", "errors", "tags"]
    assert dims(without_dimensions(tables, ["APIKeys", "tags"])) == ["", "apiid", "errors"]
    assert without_dimensions(tables, []) is tables


# --------------------------------------------------------------------------- error mapping


SQLITE = Target("sqlite", "/x/y.db", "sqlite:/x/y.db")


@pytest.mark.parametrize(
    ("exc", "kind", "phrase"),
    [
        (sqlite3.OperationalError("database is locked"), RetriableError, "locked by another writer"),
        (sqlite3.OperationalError("unable to open database file"), RetriableError, "cannot be opened"),
        (sqlite3.OperationalError("attempt to write a readonly database"), RetriableError, "is read-only"),
        (sqlite3.OperationalError("no such table: tyk_analytics"), RetriableError, "table or column missing"),
        (sqlite3.IntegrityError("NOT NULL constraint failed"), BatchDataError, "refused the data"),
        (sqlite3.DataError("string or blob too big"), BatchDataError, "refused the data"),
    ],
)
def test_sqlite_errors(exc: Exception, kind: type, phrase: str) -> None:
    err = map_error(exc, SQLITE, "write to tyk_analytics")
    assert type(err) is kind
    assert phrase in str(err) and str(err).startswith("SQLite sqlite:/x/y.db")
