"""The SQL pumps end to end: Go-msgpack records in a real Redis, ``pump run --once`` (the real
CLI), rows read back from a real PostgreSQL 15 and from SQLite. Golden numbers are Tyk's own
(tyk-pump.md §7.2 cases 1, 10, 11, 12)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pump.aggregate.sql_rows import row_id
from pump.decode.uptime import decode_uptime
from pump.record import Record
from pump.sinks.sql.report import summary
from pump.source.redis_list import UPTIME_LIST
from tests.helpers import BASE_LIST, ROOT, msgpack_payloads, numbered, push, run_once, write_config
from tests.integration import sql_helpers
from tests.integration.sql_helpers import Db, crashed_write

pytestmark = pytest.mark.integration
db = sql_helpers.db  # fixture (PostgreSQL, SQLite and MariaDB)
pg_dsn = sql_helpers.pg_dsn  # fixtures used by db
my_dsn = sql_helpers.my_dsn

T2019 = datetime(2019, 1, 1, tzinfo=UTC)
BUCKET_2019 = 1546300800


def pumps(db: Db, **agg: Any) -> dict[str, Any]:
    return {
        "sql": {"type": "sql", "meta": {**db.meta}},
        "agg": {"type": "sql_aggregate", "meta": {**db.meta, **agg}},
    }


def run(tmp_path: Path, redis_url: str, db: Db, records: list[Record] | None = None, **agg: Any) -> None:
    if records:
        push(redis_url, msgpack_payloads(records))
    config = write_config(tmp_path / "pump.json", redis_url, pumps(db, **agg))
    proc = run_once(config)
    assert proc.returncode == 0, proc.stderr[-4000:]


def agg_row(db: Db, dimension: str, value: str, table: str = "tyk_aggregated") -> dict[str, Any]:
    rows = db.dicts(f'SELECT * FROM "{table}" WHERE dimension = ? AND dimension_value = ?', (dimension, value))
    assert len(rows) == 1, rows
    return rows[0]


def sql_rec(request_time: int, code: int, total: int, upstream: int, ts: datetime = T2019, n: int = 0) -> Record:
    """A record of Tyk's TestSQLAggregateWriteDataValues (org 1, api1). ``n`` makes payloads
    distinct (the raw pump stores byte-identical payloads once)."""
    return Record(
        org_id="1", api_id="api1", timestamp=ts + timedelta(microseconds=n), request_time=request_time,
        response_code=code, latency_total=total, latency_upstream=upstream, path=f"/p/{n}",
    )  # fmt: skip


# --------------------------------------------------------------------------- §7.2 case 1


def test_case01_status_code_columns(tmp_path: Path, redis_url: str, db: Db) -> None:
    codes = [400] * 4 + [481] * 3 + [482] * 2 + [666] * 3
    records = [Record(org_id="1", api_id="api1", response_code=c, timestamp=T2019 + timedelta(seconds=i)) for i, c in enumerate(codes)]
    run(tmp_path, redis_url, db, records)
    total = agg_row(db, "", "total")
    code_columns = {k: v for k, v in total.items() if k.startswith("code_") and v}
    assert code_columns == {"code_400": 4, "code_4x": 5}
    assert (total["counter_hits"], total["counter_error"]) == (12, 12)
    assert agg_row(db, "errors", "481")["code_4x"] == 3
    dropped = agg_row(db, "errors", "666")
    assert dropped["counter_error"] == 3
    assert not any(v for k, v in dropped.items() if k.startswith("code_"))
    assert db.count("tyk_analytics") == 12


# --------------------------------------------------------------------------- §7.2 case 10


def test_case10_values_after_two_batches(tmp_path: Path, redis_url: str, db: Db) -> None:
    batch1 = [sql_rec(10, 200, 10, 10, n=1), sql_rec(10, 500, 10, 10, n=2), sql_rec(10, 200, 10, 10, n=3),
              sql_rec(20, 200, 20, 20, n=4), sql_rec(20, 500, 20, 30, n=5)]  # fmt: skip
    run(tmp_path, redis_url, db, batch1)
    rows = db.rows("SELECT dimension, dimension_value FROM tyk_aggregated ORDER BY dimension, dimension_value")
    assert [tuple(r) for r in rows] == [("", "total"), ("apiid", "api1"), ("errors", "500")]
    api = agg_row(db, "apiid", "api1")
    assert api["id"] == row_id(BUCKET_2019, "1", "apiid", "api1") == b"15463008001apiidapi1".hex()
    assert api["timestamp"] == BUCKET_2019
    assert (api["counter_hits"], api["counter_success"], api["counter_error"], api["code_500"]) == (5, 3, 2, 2)
    assert (api["counter_request_time"], api["counter_total_request_time"]) == (14.0, 70)
    assert (api["counter_latency"], api["counter_total_latency"]) == (14.0, 70)
    assert (api["counter_upstream_latency"], api["counter_total_upstream_latency"]) == (16.0, 80)
    assert (api["counter_max_latency"], api["counter_min_upstream_latency"]) == (20, 10)
    # Tyk's LastTime of a dimension: the first record of the batch touching it (issue 11).
    assert as_utc(api["counter_last_time"]) == T2019 + timedelta(microseconds=1)
    assert as_utc(agg_row(db, "", "total")["counter_last_time"]) == T2019 + timedelta(microseconds=5)
    # Tyk nils the counter's error map and list before the insert: {} and [] even with errors.
    assert (api["counter_error_map"], api["counter_error_list"]) == ("{}", "[]")

    later = T2019 + timedelta(minutes=10)
    run(tmp_path, redis_url, db, [sql_rec(10, 200, 10, 5, later, n=6), sql_rec(10, 500, 30, 10, later, n=7)])
    assert db.count("tyk_aggregated") == 3
    api = agg_row(db, "apiid", "api1")
    assert (api["counter_hits"], api["counter_success"], api["counter_error"], api["code_500"]) == (7, 4, 3, 3)
    assert api["counter_request_time"] == 12.857142857142858
    assert api["counter_total_request_time"] == 90
    assert api["counter_latency"] == 15.714285714285714
    assert api["counter_total_latency"] == 110
    assert api["counter_upstream_latency"] == 13.571428571428571
    assert api["counter_total_upstream_latency"] == 95
    assert (api["counter_max_latency"], api["counter_min_upstream_latency"]) == (30, 5)
    assert as_utc(api["counter_last_time"]) == later + timedelta(microseconds=6)  # the new batch's first record
    assert agg_row(db, "", "total")["counter_hits"] == 7
    assert db.count("tyk_analytics") == 7


def as_utc(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite keeps the ISO text
        return datetime.fromisoformat(value)
    return value.astimezone(UTC)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- §7.2 case 11


def test_case11_hourly_rows(tmp_path: Path, redis_url: str, db: Db) -> None:
    def three(ts: datetime) -> list[Record]:
        return [Record(org_id="1", api_id="api1", response_code=0, timestamp=ts) for _ in range(3)]

    for expected in (3, 6, 9):
        run(tmp_path, redis_url, db, three(T2019))
        assert db.count("tyk_aggregated") == 2
        total = agg_row(db, "", "total")
        assert total["counter_hits"] == expected
        assert (total["counter_success"], total["counter_error"]) == (0, 0)
    run(tmp_path, redis_url, db, three(T2019 + timedelta(hours=1)))
    assert db.count("tyk_aggregated") == 4
    totals = db.rows("SELECT timestamp, counter_hits FROM tyk_aggregated WHERE dimension = '' ORDER BY timestamp")
    assert [tuple(r) for r in totals] == [(BUCKET_2019, 9), (BUCKET_2019 + 3600, 3)]
    assert not db.rows("SELECT 1 FROM tyk_aggregated WHERE dimension = 'errors'")
    # Byte-identical payloads are one record to the raw pump (its primary key is the payload's id).
    assert db.count("tyk_analytics") == 2


# --------------------------------------------------------------------------- §7.2 case 12


def test_case12_sharded_tables(tmp_path: Path, redis_url: str, db: Db) -> None:
    day1, day2, day3 = T2019, T2019 + timedelta(days=1), T2019 + timedelta(days=2)
    records = [Record(org_id="1", response_code=c, timestamp=day1 + timedelta(seconds=i)) for i, c in enumerate((500, 400, 451, 200))]
    records += [
        Record(org_id="1", api_id="1", response_code=404, timestamp=day2),
        Record(org_id="1", api_id="1", response_code=404, timestamp=day2 + timedelta(seconds=1)),
        Record(org_id="1", api_id="2", response_code=401, timestamp=day2 + timedelta(seconds=2)),
        Record(org_id="1", api_id="2", response_code=401, timestamp=day3),
    ]
    push(redis_url, msgpack_payloads(records))
    config = write_config(
        tmp_path / "pump.json", redis_url,
        {"sql": {"type": "sql", "meta": {**db.meta, "table_sharding": True}},
         "agg": {"type": "sql_aggregate", "meta": {**db.meta, "table_sharding": True}}},
    )  # fmt: skip
    proc = run_once(config)
    assert proc.returncode == 0, proc.stderr[-4000:]
    shards = {t: db.count(t) for t in db.tables("tyk_aggregated") if t != "tyk_aggregated"}
    today = f"tyk_aggregated_{datetime.now(UTC):%Y%m%d}"  # created (empty) at start, as Tyk does
    assert shards.pop(today, 0) == 0
    assert shards == {"tyk_aggregated_20190101": 4, "tyk_aggregated_20190102": 5, "tyk_aggregated_20190103": 3}
    values = db.rows("SELECT dimension_value FROM tyk_aggregated_20190101 ORDER BY dimension_value")
    assert [r[0] for r in values] == ["400", "451", "500", "total"]
    raw = {t: db.count(t) for t in db.tables("tyk_analytics") if t != f"tyk_analytics_{datetime.now(UTC):%Y%m%d}"}
    assert raw == {"tyk_analytics_20190101": 4, "tyk_analytics_20190102": 3, "tyk_analytics_20190103": 1}
    for table in ("tyk_analytics_20190101", "tyk_aggregated_20190102"):
        assert index_names(db, table) >= {f"{table}_{s}" for s in suffixes(table)}


def suffixes(table: str) -> list[str]:
    if table.startswith("tyk_analytics"):
        return [f"idx_{c}" for c in ("responsecode", "apikey", "timestamp", "apiid", "orgid", "oauthid")]
    return ["idx_dimension"]


def index_names(db: Db, table: str) -> set[str]:
    if db.backend == "postgres":
        return {r[0] for r in db.rows("SELECT indexname FROM pg_indexes WHERE tablename = ?", (table,))}
    if db.backend == "mysql":
        return {
            r[0]
            for r in db.rows(
                "SELECT index_name FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = ?", (table,)
            )
        }
    return {r[0] for r in db.rows("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?", (table,))}


# --------------------------------------------------------------------------- redelivery


def test_same_payloads_pushed_again_leave_raw_rows_unchanged(tmp_path: Path, redis_url: str, db: Db) -> None:
    records = numbered(300)
    run(tmp_path, redis_url, db, records)
    before = db.rows("SELECT id, path, timestamp FROM tyk_analytics ORDER BY id")
    assert len(before) == 300
    run(tmp_path, redis_url, db, records)  # the gateway (or an operator's replay) sends the same bytes
    assert db.rows("SELECT id, path, timestamp FROM tyk_analytics ORDER BY id") == before


def test_batch_redelivered_after_a_crash_is_not_counted_twice(tmp_path: Path, redis_url: str, db: Db) -> None:
    """A pump wrote a batch, then died before acknowledging it; the batch comes back under the
    same id and the next run must change neither the raw nor the aggregate rows."""
    from pump.config.load import validate
    from pump.sinks import build as build_sink
    from pump.sinks.base import SinkBatch, SinkContext

    records = [sql_rec(10, 200 if i % 3 else 500, 10 + i, 5, n=i) for i in range(50)]
    push(redis_url, msgpack_payloads(records))
    config, _ = validate({"pumps": pumps(db)})

    async def write(batch_id: str, decoded: list[Record]) -> None:
        for name in ("sql", "agg"):
            sink = build_sink(SinkContext(name, config.pumps[name], config))
            await sink.start()
            await sink.write(SinkBatch(batch_id, decoded))
            await sink.close()

    crashed_write(redis_url, BASE_LIST, 5000, write)
    raw_before = db.rows("SELECT id FROM tyk_analytics ORDER BY id")
    agg_before = db.rows("SELECT id, counter_hits, counter_error, counter_total_latency FROM tyk_aggregated ORDER BY id")
    assert agg_row(db, "", "total")["counter_hits"] == 50

    run(tmp_path, redis_url, db)  # the returned batch is delivered again, same id
    assert db.rows("SELECT id FROM tyk_analytics ORDER BY id") == raw_before
    assert db.rows("SELECT id, counter_hits, counter_error, counter_total_latency FROM tyk_aggregated ORDER BY id") == agg_before
    assert db.rows("SELECT COUNT(*) FROM pump_applied_batches WHERE pump = 'agg'")[0][0] == 1
    from tests.helpers import list_lengths

    assert sum(list_lengths(redis_url).values()) == 0  # and the batch was acknowledged this time


# --------------------------------------------------------------------------- odd data


ODD_PATHS = [
    "/ünïcødé/日本語/emoji-😀",
    "/tab\there/newline\nhere/cr\rhere/backslash\\here/\\N/\\t",
    "/" + "very-long-segment/" * 6000,
    "/nul\x00byte",
    "/quote\"and'apostrophe,comma;semicolon",
]


def test_odd_characters_survive(tmp_path: Path, redis_url: str, db: Db) -> None:
    records = [
        Record(org_id="o", api_id="a", path=p, raw_path=p, user_agent=f"ua\t{i}\\", tags=[f"t\n{i}", "x\"y\\z"],
               response_code=200, timestamp=T2019 + timedelta(seconds=i), alias="ålias\x00")
        for i, p in enumerate(ODD_PATHS)
    ]  # fmt: skip
    run(tmp_path, redis_url, db, records, track_all_paths=True)
    got = {r[0]: r[1:] for r in db.rows("SELECT path, rawpath, useragent, tags, alias FROM tyk_analytics")}
    for i, p in enumerate(ODD_PATHS):
        stored = p.replace("\x00", "\ufffd")  # NUL cannot be stored in PostgreSQL text: U+FFFD instead
        tags = json.dumps([f"t\n{i}", 'x"y\\z'], ensure_ascii=False, separators=(",", ":"))
        assert got[stored] == (stored, f"ua\t{i}\\", tags, "ålias\ufffd")
        assert json.loads(tags) == [f"t\n{i}", 'x"y\\z']
    endpoints = {r[0] for r in db.rows("SELECT dimension_value FROM tyk_aggregated WHERE dimension = 'endpoints'")}
    # The 108 kB path is stored raw, but its endpoint rows are too long for an index key (skipped
    # with a warning on both backends); the record still counts in the total and its API.
    assert endpoints == {p.replace("\x00", "\ufffd") for p in ODD_PATHS if len(p) < 1000}
    assert agg_row(db, "", "total")["counter_hits"] == agg_row(db, "apiid", "a")["counter_hits"] == len(ODD_PATHS)


# --------------------------------------------------------------------------- uptime


def test_uptime_sql_pump_matches_tyk_rows(tmp_path: Path, redis_url: str, db: Db) -> None:
    fixture = json.loads((ROOT / "tests/fixtures/tyk/uptime.json").read_text())
    payloads = [bytes.fromhex(c["msgpack_hex_gateway_shape"]) for c in fixture["cases"]]
    push(redis_url, payloads, key=UPTIME_LIST)
    config = write_config(
        tmp_path / "pump.json", redis_url, {"dummy": {"type": "dummy"}},
        dont_purge_uptime_data=False, uptime_pump_config={"uptime_type": "sql", **db.meta},
    )  # fmt: skip
    proc = run_once(config)
    assert proc.returncode == 0, proc.stderr[-4000:]
    got = {r["id"]: r for r in db.dicts("SELECT * FROM tyk_uptime_analytics")}
    expected = {row["columns"]["id"]: row["columns"] for row in fixture["sql_rows"]}
    assert set(got) == set(expected)
    for rid, want in expected.items():
        have = got[rid]
        for column, value in want.items():
            if column != "counter_last_time":  # ours differs on purpose, asserted below
                assert have[column] == value, (want["dimension"], want["dimension_value"], column)
    # counter_last_time: the last record that touched the counter (Tyk: the first one, and Go's
    # zero time for the total), at PostgreSQL's microsecond precision.
    last = {(r["dimension"], r["dimension_value"]): as_utc(r["counter_last_time"]) for r in got.values()}
    assert last == {
        ("errors", "503"): datetime(2024, 1, 15, 13, 46, tzinfo=UTC),
        ("url", "http://upstream.internal:8080/health"): datetime(2024, 1, 15, 13, 46, tzinfo=UTC),
        ("url", "https://other.internal/ping"): datetime(2024, 1, 15, 14, 1, 2, tzinfo=UTC),
        ("", "total"): datetime(2024, 1, 15, 14, 1, 2, tzinfo=UTC),
    }
    assert [r.url for r in map(decode_uptime, payloads)][:2] == ["http://upstream.internal:8080/health"] * 2
    # Running the same host checks again (a new batch) doubles the counts and re-averages.
    push(redis_url, payloads, key=UPTIME_LIST)
    proc = run_once(config)
    assert proc.returncode == 0, proc.stderr[-4000:]
    url = db.dicts(
        "SELECT * FROM tyk_uptime_analytics WHERE dimension = 'url' AND dimension_value = ?", ("http://upstream.internal:8080/health",)
    )[0]
    assert (url["counter_hits"], url["code_200"], url["code_503"], url["counter_total_request_time"]) == (4, 2, 2, 3084)
    assert url["counter_request_time"] == 771.0


# --------------------------------------------------------------------------- report


def test_summary_reports_top_apis_and_error_codes(tmp_path: Path, redis_url: str, db: Db) -> None:
    codes = [200] * 6 + [404] * 3 + [500]
    records = [
        Record(org_id="o", api_id="users", api_name="Users API", response_code=c, latency_total=10, timestamp=T2019 + timedelta(seconds=i))
        for i, c in enumerate(codes)
    ]
    records += [
        Record(org_id="o", api_id="orders", api_name="Orders API", response_code=200, timestamp=T2019 + timedelta(seconds=20 + i))
        for i in range(2)
    ]
    run(tmp_path, redis_url, db, records)
    text = summary(db.target)
    lines = text.splitlines()
    assert "Requests: 12   errors: 4 (33.3%)" in lines
    apis = [line for line in lines if "API (" in line]
    assert apis[0].split() == ["Users", "API", "(users)", "10", "4", "10.0", "ms"]
    assert apis[1].split()[:4] == ["Orders", "API", "(orders)", "2"]
    code_lines = lines[lines.index("Top error codes") + 2 :]
    assert [c.split() for c in code_lines] == [["404", "3"], ["500", "1"]]
