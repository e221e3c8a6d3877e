"""``sql_aggregate`` ``rollups:`` on real PostgreSQL and SQLite: exact rows per granularity for a
fixed set of records that crosses minute, hour, day, month and year boundaries; a redelivered
(and a split-then-redelivered) batch leaves every rollup table exact; retention deletes old
buckets; without ``rollups`` nothing changes (no new table, identical ``tyk_aggregated``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from pump.aggregate.rollups import GRANULARITIES
from pump.record import Record
from pump.sinks.base import SinkBatch
from pump.sinks.sql import aggregate as agg
from pump.sinks.sql import summary
from pump.sinks.sql.config import target_of
from tests.integration import sql_helpers
from tests.integration.sql_helpers import Db

pytestmark = pytest.mark.integration
pg_dsn = sql_helpers.pg_dsn  # fixture
my_dsn = sql_helpers.my_dsn  # fixture
db = sql_helpers.db  # fixture: runs each test on PostgreSQL, SQLite and MariaDB

#: (timestamp, response code, request time): across every boundary a rollup has.
ROWS = [
    (datetime(2023, 12, 31, 23, 59, 50, tzinfo=UTC), 200, 10),
    (datetime(2024, 1, 1, 0, 0, 10, tzinfo=UTC), 500, 30),
    (datetime(2024, 1, 1, 0, 0, 40, tzinfo=UTC), 200, 20),
    (datetime(2024, 1, 1, 1, 15, 0, tzinfo=UTC), 200, 40),
    (datetime(2024, 2, 3, 10, 0, 0, tzinfo=UTC), 404, 50),
]


def records() -> list[Record]:
    return [
        Record(org_id="org1", api_id="api1", api_name="API 1", response_code=code, request_time=rt, latency_total=rt,
               latency_upstream=rt // 2, timestamp=ts, path="/x")
        for ts, code, rt in ROWS
    ]  # fmt: skip


def unix(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp())  # type: ignore[misc]


#: Granularity → total rows as (bucket, hits, success, errors, total request time, code_404, code_500).
GOLDEN: dict[str, list[tuple[int, int, int, int, float, int, int]]] = {
    "minute": [
        (unix(2023, 12, 31, 23, 59), 1, 1, 0, 10.0, 0, 0),
        (unix(2024, 1, 1, 0, 0), 2, 1, 1, 50.0, 0, 1),
        (unix(2024, 1, 1, 1, 15), 1, 1, 0, 40.0, 0, 0),
        (unix(2024, 2, 3, 10, 0), 1, 0, 1, 50.0, 1, 0),
    ],
    "hour": [
        (unix(2023, 12, 31, 23), 1, 1, 0, 10.0, 0, 0),
        (unix(2024, 1, 1, 0), 2, 1, 1, 50.0, 0, 1),
        (unix(2024, 1, 1, 1), 1, 1, 0, 40.0, 0, 0),
        (unix(2024, 2, 3, 10), 1, 0, 1, 50.0, 1, 0),
    ],
    "day": [
        (unix(2023, 12, 31), 1, 1, 0, 10.0, 0, 0),
        (unix(2024, 1, 1), 3, 2, 1, 90.0, 0, 1),
        (unix(2024, 2, 3), 1, 0, 1, 50.0, 1, 0),
    ],
    "month": [
        (unix(2023, 12, 1), 1, 1, 0, 10.0, 0, 0),
        (unix(2024, 1, 1), 3, 2, 1, 90.0, 0, 1),
        (unix(2024, 2, 1), 1, 0, 1, 50.0, 1, 0),
    ],
    "year": [
        (unix(2023, 1, 1), 1, 1, 0, 10.0, 0, 0),
        (unix(2024, 1, 1), 4, 2, 2, 140.0, 1, 1),
    ],
}


def sink(db: Db, name: str = "agg", **meta: Any) -> agg.AggregateSink:
    m = agg.Meta(**db.meta, **meta)
    if not m.rollups:  # what the registry builds without our options: Tyk's sink itself
        return agg.AggregateSink(name, m, target_of(m), agg.AGGREGATE_SPEC, agg.aggregate_rows_of(m), concurrency=1)
    return summary.sink_for(name, m)


def totals(db: Db, table: str) -> list[tuple[Any, ...]]:
    return [
        (int(r[0]), int(r[1]), int(r[2]), int(r[3]), float(r[4]), int(r[5]), int(r[6]))
        for r in db.rows(
            f"SELECT timestamp, counter_hits, counter_success, counter_error, counter_total_request_time, code_404, code_500 "
            f"FROM \"{table}\" WHERE dimension = '' AND dimension_value = 'total' ORDER BY timestamp"
        )
    ]


async def write(s: agg.AggregateSink, *batches: SinkBatch) -> None:
    await s.start()
    try:
        for b in batches:
            await s.write(b)
    finally:
        await s.close()


async def test_rollup_rows_per_granularity_are_exact(db: Db) -> None:
    await write(sink(db, rollups=list(GRANULARITIES)), SinkBatch("b1", records()))
    for granularity, expected in GOLDEN.items():
        assert totals(db, f"tyk_aggregated_{granularity}") == expected, granularity
    # a dimension row too: the API's day rows, with the averages and extremes of its bucket
    day = db.dicts(
        "SELECT timestamp, counter_hits, counter_latency, counter_max_latency, counter_min_latency, counter_human_identifier "
        "FROM tyk_aggregated_day WHERE dimension = 'apiid' ORDER BY timestamp"
    )
    assert [(int(d["timestamp"]), int(d["counter_hits"]), float(d["counter_latency"]), int(d["counter_max_latency"]),
             int(d["counter_min_latency"]), d["counter_human_identifier"]) for d in day] == [
        (unix(2023, 12, 31), 1, 10.0, 10, 10, "API 1"),
        (unix(2024, 1, 1), 3, 30.0, 40, 20, "API 1"),
        (unix(2024, 2, 3), 1, 50.0, 50, 50, "API 1"),
    ]  # fmt: skip


async def test_redelivered_and_split_batches_keep_every_rollup_exact(db: Db) -> None:
    recs = records()
    await write(
        sink(db, rollups=list(GRANULARITIES)),
        SinkBatch("b1", recs),
        SinkBatch("b1", recs),  # redelivered after a crash before the acknowledgement
        SinkBatch("b2.0", recs[:2]),  # a split half landed, then the process died
        SinkBatch("b2", recs),  # the whole batch comes back: only its other half counts
        SinkBatch("b2.1", recs[2:]),  # and the late other half: its ancestor is applied
    )
    for granularity, expected in GOLDEN.items():
        doubled = [(ts, h * 2, s * 2, e * 2, rt * 2, c4 * 2, c5 * 2) for ts, h, s, e, rt, c4, c5 in expected]
        assert totals(db, f"tyk_aggregated_{granularity}") == doubled, granularity


async def test_without_rollups_nothing_changes(db: Db, tmp_path: Any) -> None:
    await write(sink(db, name="plain"), SinkBatch("b1", records()))
    plain = db.rows("SELECT * FROM tyk_aggregated ORDER BY id")
    if db.backend == "postgres":
        names = db.rows("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
    elif db.backend == "mysql":
        names = db.rows("SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()")
    else:
        names = db.rows("SELECT name FROM sqlite_master WHERE type = 'table'")
    assert sorted(n[0] for n in names) == ["pump_applied_batches", "tyk_aggregated"]
    # the same batch with every rollup on (another pump name, another database) writes the same tyk_aggregated
    other = Db("sqlite", str(tmp_path / "other.sqlite")) if db.backend == "sqlite" else Db(db.backend, db.target)
    if db.backend == "postgres":
        with psycopg.connect(db.target, autocommit=True) as conn:
            conn.execute("DELETE FROM tyk_aggregated")
    elif db.backend == "mysql":
        sql_helpers.mysql_execute(db.target, "DELETE FROM tyk_aggregated")
    await write(sink(other, name="rolled", rollups=list(GRANULARITIES)), SinkBatch("b1", records()))
    assert other.rows("SELECT * FROM tyk_aggregated ORDER BY id") == plain


async def test_retention_deletes_old_buckets_only(db: Db) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    old = Record(org_id="org1", api_id="api1", response_code=200, timestamp=datetime(2020, 5, 5, 5, tzinfo=UTC))
    new = Record(org_id="org1", api_id="api1", response_code=200, timestamp=now)
    rollups = [{"granularity": "day", "retention_days": 30}, "month"]
    await write(sink(db, rollups=rollups), SinkBatch("b1", [old, new]))  # pruned at start: empty tables then
    assert len(totals(db, "tyk_aggregated_day")) == 2
    s = sink(db, rollups=rollups)
    await s.start()  # prunes at start
    await s.close()
    day = totals(db, "tyk_aggregated_day")
    assert [r[0] for r in day] == [int(now.replace(hour=0, minute=0, second=0).timestamp())]
    assert len(totals(db, "tyk_aggregated_month")) == 2  # no retention: kept
