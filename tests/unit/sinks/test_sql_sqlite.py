"""The SQL sinks on a real SQLite file (no server needed): idempotent raw rows, exactly-once
aggregates, the upsert arithmetic against ``merge_row``, migrations, uptime rows, the report."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pump.aggregate.sql_rows import SQL_COLUMNS, AggregateRow, merge_row
from pump.decode.uptime import decode_uptime
from pump.errors import BatchDataError, RetriableError
from pump.gotime import dt_text
from pump.record import Record, UptimeRecord
from pump.sinks.base import SinkBatch
from pump.sinks.sql import aggregate as agg
from pump.sinks.sql import raw
from pump.sinks.sql.config import target_of
from pump.sinks.sql.report import summary
from pump.sinks.sql.uptime import UPTIME_SPEC, aggregate_uptime, build_uptime_rows, uptime_rows_of
from tests.helpers import ROOT, numbered, random_aggregate_rows

T = datetime(2024, 3, 10, 14, 5, tzinfo=UTC)


def raw_sink(path: Path, **meta: Any) -> raw.SqlSink:
    m = raw.Meta(type="sqlite", connection_string=str(path), **meta)
    return raw.SqlSink("sql", m, target_of(m))


def agg_sink(path: Path, rows_of: agg.RowsOf | None = None, name: str = "agg", **meta: Any) -> agg.AggregateSink:
    m = agg.Meta(type="sqlite", connection_string=str(path), **meta)
    return agg.AggregateSink(name, m, target_of(m), agg.AGGREGATE_SPEC, rows_of or agg.aggregate_rows_of(m), m.ledger_retention_days)


def rows(path: Path, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(query, params).fetchall()
    finally:
        conn.close()


def records(n: int, ts: datetime = T) -> list[Record]:
    return [Record(org_id="o", api_id=f"api{i % 3}", response_code=200 if i % 4 else 500, latency_total=i, timestamp=ts) for i in range(n)]


def hits(path: Path) -> int:
    return int(rows(path, "SELECT COALESCE(SUM(counter_hits), 0) FROM tyk_aggregated WHERE dimension = ''")[0][0])


# --------------------------------------------------------------------------- raw


async def test_raw_rows_are_written_once_per_record(tmp_path: Path) -> None:
    db = tmp_path / "sub" / "dir" / "pump.sqlite"  # the directory is created
    sink = raw_sink(db)
    await sink.start()
    batch = SinkBatch("x", numbered(300))
    await sink.write(batch)
    first = rows(db, "SELECT * FROM tyk_analytics ORDER BY id")
    await sink.write(batch)
    await sink.write(SinkBatch("x.0", batch.records[:150]))
    await sink.check()
    await sink.close()
    await sink.close()  # closing twice is fine
    assert rows(db, "SELECT * FROM tyk_analytics ORDER BY id") == first
    assert len(first) == 300 and sink.duplicates == 450
    names = [r[1] for r in rows(db, "PRAGMA table_info(tyk_analytics)")]
    assert names == list(raw.COLUMN_NAMES)
    r = numbered(1)[0]
    stored = dict(zip(names, rows(db, "SELECT * FROM tyk_analytics WHERE path = '/items/0'")[0], strict=True))
    assert stored["timestamp"] == "2024-01-15 13:45:12.000000+00:00"
    assert stored["expireAt"] == "2024-01-15 13:45:12.123456+00:00"
    assert (stored["trackpath"], stored["tags"], stored["month"], stored["id"]) == (0, '["key-00000000"]', 1, raw.rid(r))


async def test_sharded_raw_tables_and_indexes(tmp_path: Path) -> None:
    db = tmp_path / "pump.sqlite"
    sink = raw_sink(db, table_sharding=True)
    await sink.start()
    await sink.write(SinkBatch("x", [*numbered(2), Record(org_id="o", timestamp=T)]))
    await sink.close()
    tables = {r[0] for r in rows(db, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"tyk_analytics_20240115", "tyk_analytics_20240310", f"tyk_analytics_{datetime.now(UTC):%Y%m%d}"} <= tables
    indexes = {r[0] for r in rows(db, "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tyk_analytics_20240310'")}
    assert {f"tyk_analytics_20240310_idx_{c}" for c in ("responsecode", "apikey", "timestamp", "apiid", "orgid", "oauthid")} <= indexes


async def test_table_made_by_another_tool_is_migrated(tmp_path: Path) -> None:
    db = tmp_path / "pump.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE tyk_analytics (method TEXT, path TEXT)")
    conn.execute("INSERT INTO tyk_analytics VALUES ('GET', '/old')")
    conn.commit()
    conn.close()
    sink = raw_sink(db)
    await sink.start()
    await sink.write(SinkBatch("x", numbered(3)))
    await sink.write(SinkBatch("x", numbered(3)))
    await sink.close()
    assert [r[1] for r in rows(db, "PRAGMA table_info(tyk_analytics)")][:2] == ["method", "path"]
    assert {r[1] for r in rows(db, "PRAGMA table_info(tyk_analytics)")} == set(raw.COLUMN_NAMES)
    assert rows(db, "SELECT COUNT(*), COUNT(id) FROM tyk_analytics") == [(4, 3)]


async def test_unopenable_database_is_a_clear_retriable_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    sink = raw_sink(blocker / "pump.sqlite")
    with pytest.raises(RetriableError, match=r"^SQLite sqlite:.*/file/pump.sqlite cannot be opened"):
        await sink.start()
    await sink.close()


# --------------------------------------------------------------------------- aggregates


async def test_same_batch_twice_and_split_halves_count_once(tmp_path: Path) -> None:
    db = tmp_path / "pump.sqlite"
    sink = agg_sink(db)
    await sink.start()
    recs = records(40)
    await sink.write(SinkBatch("b.1", recs[20:]))
    await sink.write(SinkBatch("b.1", recs[20:]))
    assert hits(db) == 20
    await sink.write(SinkBatch("b", recs))  # redelivered whole: only the half not applied
    await sink.write(SinkBatch("b.0", recs[:20]))  # ancestor applied: skipped
    await sink.write(SinkBatch("b", recs))
    await sink.close()
    assert hits(db) == 40
    assert (sink.applied, sink.skipped) == (2, 3)
    assert sorted(r[0] for r in rows(db, "SELECT batch_id FROM pump_applied_batches")) == ["b", "b.1"]


async def test_concurrent_batches_are_serialised(tmp_path: Path) -> None:
    db = tmp_path / "pump.sqlite"
    sink = agg_sink(db)
    await sink.start()
    await asyncio.gather(*(sink.write(SinkBatch(f"b{i}", records(25))) for i in range(8)))
    await sink.close()
    assert hits(db) == 200


async def test_prune_forgets_old_batch_ids(tmp_path: Path) -> None:
    db = tmp_path / "pump.sqlite"
    sink = agg_sink(db, ledger_retention_days=2)
    await sink.start()
    await sink.write(SinkBatch("old", records(1)))
    await sink.write(SinkBatch("new", records(1)))
    conn = sqlite3.connect(db)
    conn.execute("UPDATE pump_applied_batches SET applied_at = applied_at - 3 * 86400 WHERE batch_id = 'old'")
    conn.commit()
    conn.close()
    await sink._prune()
    await sink.close()
    assert rows(db, "SELECT batch_id FROM pump_applied_batches") == [("new",)]


async def test_upsert_arithmetic_equals_the_reference_merge(tmp_path: Path) -> None:
    rng = random.Random(99)
    ids = [f"id{i:03d}" for i in range(50)]
    batches = [sorted(random_aggregate_rows(rng, rng.sample(ids, 30), "tags"), key=lambda r: r.id) for _ in range(6)]
    expected: dict[str, AggregateRow] = {}
    for batch in batches:
        for row in batch:
            expected[row.id] = row if row.id not in expected else merge_row(expected[row.id], row)
    queue = list(batches)
    db = tmp_path / "pump.sqlite"
    sink = agg_sink(db, rows_of=lambda _: {"tyk_aggregated": queue.pop(0)})
    await sink.start()
    for i in range(len(batches)):
        await sink.write(SinkBatch(f"b{i}", [None]))
    await sink.close()
    got = {r[0]: r for r in rows(db, f"SELECT {', '.join(SQL_COLUMNS)} FROM tyk_aggregated")}
    assert set(got) == set(expected)
    for rid, want in expected.items():
        for column, w, h in zip(SQL_COLUMNS, want, got[rid], strict=True):
            if column == "counter_last_time":
                assert isinstance(w, datetime) and h == dt_text(w)
            elif isinstance(w, float):
                assert h == pytest.approx(w, rel=1e-12, abs=1e-9), (rid, column)
            else:
                assert h == w, (rid, column)


async def test_sharded_aggregates_and_per_minute_buckets(tmp_path: Path) -> None:
    db = tmp_path / "pump.sqlite"
    sink = agg_sink(db, table_sharding=True, store_analytics_per_minute=True)
    await sink.start()
    await sink.write(SinkBatch("a", records(3, T) + records(2, T + timedelta(days=1, minutes=3))))
    await sink.close()
    assert rows(db, "SELECT DISTINCT timestamp FROM tyk_aggregated_20240310") == [(int(T.timestamp()),)]
    assert rows(db, "SELECT counter_hits FROM tyk_aggregated_20240311 WHERE dimension = ''") == [(2,)]
    assert rows(db, "SELECT DISTINCT timestamp FROM tyk_aggregated_20240311") == [(int(T.timestamp()) + 86400 + 180,)]


async def test_year_one_shards_are_zero_padded_by_both_pumps(tmp_path: Path) -> None:
    """Issue 9 item 4: ``sql_aggregate`` named year 1's shard ``tyk_aggregated_10101`` (``%Y`` is
    not zero padded), refused it as an unexpected table name and never delivered; the raw pump
    wrote ``tyk_analytics_00010101``. Both now use ``shard_suffix``; year 2024 still 20240310."""
    db = tmp_path / "pump.sqlite"
    year1 = datetime(1, 1, 1, 0, 0, 5, tzinfo=UTC)
    batch = records(2, year1) + records(3, T)
    raw_pump, agg_pump = raw_sink(db, table_sharding=True), agg_sink(db, table_sharding=True)
    for sink in (raw_pump, agg_pump):
        await sink.start()
        await sink.write(SinkBatch("y1", batch))
        await sink.close()
    tables = {t for (t,) in rows(db, "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'tyk_%'")}
    assert {"tyk_analytics_00010101", "tyk_aggregated_00010101", "tyk_analytics_20240310", "tyk_aggregated_20240310"} <= tables
    assert rows(db, "SELECT COUNT(*) FROM tyk_analytics_00010101") == [(2,)]
    assert rows(db, "SELECT counter_hits FROM tyk_aggregated_00010101 WHERE dimension = ''") == [(2,)]
    assert rows(db, "SELECT counter_hits FROM tyk_aggregated_20240310 WHERE dimension = ''") == [(3,)]


# --------------------------------------------------------------------------- uptime

UPTIME = json.loads((ROOT / "tests/fixtures/tyk/uptime.json").read_text())


def uptime_records() -> list[UptimeRecord]:
    return [decode_uptime(bytes.fromhex(c["msgpack_hex_gateway_shape"])) for c in UPTIME["cases"]]


def test_uptime_rows_equal_tyks_except_last_time() -> None:
    got = {r.id: r._asdict() for r in build_uptime_rows(uptime_records())["tyk_uptime_analytics"]}
    for row in UPTIME["sql_rows"]:
        want = row["columns"]
        have = got.pop(want["id"])
        assert {k: v for k, v in have.items() if k != "counter_last_time"} == {k: v for k, v in want.items() if k != "counter_last_time"}
    assert not got


def test_uptime_aggregate_matches_tyks_counters() -> None:
    agg_ = aggregate_uptime(uptime_records())["5e9d9544a1dcd60001d0ed20"]
    want = UPTIME["aggregate"]["5e9d9544a1dcd60001d0ed20"]
    assert agg_.timestamp == datetime(2024, 1, 15, 13, tzinfo=UTC)
    for ours, theirs in ((agg_.url, want["URL"]), (agg_.errors, want["Errors"]), ({"": agg_.total}, {"": want["Total"]})):
        assert set(ours) == set(theirs)
        for key, c in ours.items():
            t = theirs[key]
            assert (c.hits, c.success, c.error_total, c.total_request_time, c.request_time) == (
                t["hits"], t["success"], t["error"], t["total_request_time"], t["request_time"],
            )  # fmt: skip
            assert c.error_map == (t["error_map"] or {}) and c.identifier == t["identifier"]


def test_uptime_skips_orgless_and_network_only_records() -> None:
    base = {"org_id": "o", "url": "http://u", "timestamp": T, "expire_at": T}
    recs = [
        UptimeRecord(**{**base, "response_code": -1}),
        UptimeRecord(**{**base, "org_id": ""}),
        UptimeRecord(**{**base, "url": "http://v", "response_code": 301}),
    ]
    a = aggregate_uptime(recs)["o"]
    assert (a.url["http://u"].hits, a.url["http://v"].hits, a.total.hits) == (0, 1, 1)
    assert (a.total.success, a.total.error_total, a.total.error_map, a.errors) == (0, 0, {}, {})


def test_uptime_sharding_runs() -> None:
    day2 = T + timedelta(days=1)
    recs = [UptimeRecord(org_id="o", url="u", response_code=200, timestamp=ts, expire_at=ts) for ts in (T, day2, T)]
    tables = build_uptime_rows(recs, sharding=True)
    assert {t: [r.counter_hits for r in rs if r.dimension == ""] for t, rs in tables.items()} == {
        "tyk_uptime_analytics_20240310": [2],
        "tyk_uptime_analytics_20240311": [1],
    }


async def test_uptime_sink_applies_a_batch_once(tmp_path: Path) -> None:
    db = tmp_path / "pump.sqlite"
    m = agg.Meta(type="sqlite", connection_string=str(db))
    sink = agg.AggregateSink("uptime", m, target_of(m), UPTIME_SPEC, uptime_rows_of(m))
    await sink.start()
    await sink.write(SinkBatch("u", uptime_records()))
    await sink.write(SinkBatch("u", uptime_records()))
    await sink.write(SinkBatch("v", uptime_records()))
    await sink.close()
    assert rows(db, "SELECT counter_hits, counter_request_time, code_200, code_503 FROM tyk_uptime_analytics WHERE dimension = ''") == [
        (6, 6542 * 2 / 6, 2, 2)
    ]
    indexes = {r[0] for r in rows(db, "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tyk_uptime_analytics'")}
    assert "tyk_uptime_analytics_idx_dimension" in indexes


# --------------------------------------------------------------------------- report


async def test_summary_reads_every_shard(tmp_path: Path) -> None:
    db = tmp_path / "pump.sqlite"
    sink = agg_sink(db, table_sharding=True)
    await sink.start()
    day1 = [Record(org_id="o", api_id="a", api_name="A API", response_code=c, latency_total=4, timestamp=T) for c in (200, 200, 404)]
    day2 = [Record(org_id="o", api_id="b", response_code=c, timestamp=T + timedelta(days=1)) for c in (500, 404, 404, 404)]
    await sink.write(SinkBatch("x", day1 + day2))
    await sink.close()
    text = summary(str(db), limit=1)
    assert "Requests: 7   errors: 5 (71.4%)" in text
    lines = text.splitlines()
    assert lines[lines.index("Top APIs by requests") + 2].split() == ["b", "4", "4", "0.0", "ms"]
    assert lines[lines.index("Top error codes") + 2].split() == ["404", "4"]
    assert len(lines) == lines.index("Top error codes") + 3  # limit=1
    assert "tables" in lines[0] and "(3 tables)" in lines[0]  # two shards plus today's, created at start
    assert summary(tmp_path / "missing.sqlite").startswith("No aggregate table")


async def test_integer_beyond_64_bits_is_a_data_error(tmp_path: Path) -> None:
    """sqlite3 raises a bare OverflowError for such an integer; it is the data's fault, as
    PostgreSQL's "out of range" is: a BatchDataError, and nothing of the batch is written."""
    db = tmp_path / "x.sqlite"
    sink = raw_sink(db)
    await sink.start()
    with pytest.raises(BatchDataError, match=r"refused the data.*too large"):
        await sink.write(SinkBatch("a", [*records(3), Record(content_length=1 << 63, org_id="o")]))
    await sink.close()
    assert rows(db, "SELECT COUNT(*) FROM tyk_analytics") == [(0,)]


async def test_over_long_ids_never_lose_the_total_and_every_drop_is_counted(tmp_path: Path) -> None:
    """Issue 9 item 5 (golden): rows whose id exceeded MAX_ID_LENGTH were skipped, the total row
    included, so an org id of 1,500 characters lost every hit. Now: such a row is stored under a
    hashed id when its key fits the index; a dimension row that cannot fit is dropped and counted
    in ``pump_aggregate_dimensions_dropped_total``; a record whose org id is too long even for
    its total row is dead-lettered, never dropped."""
    from prometheus_client import CollectorRegistry

    from pump.errors import RejectedRecords
    from pump.telemetry.metrics import Metrics

    db = tmp_path / "pump.sqlite"
    metrics = Metrics(CollectorRegistry())
    sink = agg_sink(db)
    sink.metrics = metrics
    long_org, huge_org = "L" * 1500, "H" * 3000
    batch = (
        [Record(org_id="o", api_id="a", path=f"/p{i % 10}", track_path=True, response_code=200, timestamp=T) for i in range(100)]
        + [Record(org_id="o", api_id="a", path="/" + "x" * 3000, track_path=True, response_code=200, timestamp=T) for _ in range(7)]
        + [Record(org_id=long_org, api_id="a", response_code=200, timestamp=T) for _ in range(5)]
        + [Record(org_id=huge_org, api_id="a", response_code=200, timestamp=T) for _ in range(3)]
    )
    await sink.start()
    with pytest.raises(RejectedRecords) as info:
        await sink.write(SinkBatch("b", batch))
    assert sorted(info.value.rejected) == [112, 113, 114]
    assert all("org id" in reason and "3000" in reason for reason in info.value.rejected.values())
    with pytest.raises(RejectedRecords):
        await sink.write(SinkBatch("b", batch))  # redelivered: nothing counted twice
    await sink.close()
    totals = dict(rows(db, "SELECT org_id, counter_hits FROM tyk_aggregated WHERE dimension = ''"))
    assert totals == {"o": 107, long_org: 5}
    stored_long = rows(db, "SELECT id, dimension FROM tyk_aggregated WHERE org_id = ?", (long_org,))
    assert len(stored_long) == 2 and all(i.startswith("sha256:") for i, _ in stored_long)  # apiid + total
    assert rows(db, "SELECT SUM(counter_hits) FROM tyk_aggregated WHERE dimension = 'endpoints'") == [(100,)]
    dropped = metrics.registry.get_sample_value("pump_aggregate_dimensions_dropped_total", {"pump": "agg", "reason": "key_too_long"})
    assert dropped == 2  # the 3,000-char path's endpoints and apiendpoints rows, once (not again on redelivery)
