"""``publish_interval`` of ``sql_aggregate`` on real databases: ``write_many`` (one flush of many
batches) writes exactly what batch-by-batch writes do and skips what was applied before; and
the real daemon, SIGKILLed while it holds claimed records for a flush, then restarted, counts
every record exactly once — also when the flush had committed before the crash."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pump.aggregate.rollups import GRANULARITIES
from pump.record import Record
from pump.sinks.base import SinkBatch
from pump.sinks.sql import aggregate as agg
from pump.sinks.sql import summary
from tests.helpers import BASE_LIST, list_lengths, msgpack_payloads, numbered, push, run_once, write_config
from tests.integration import sql_helpers
from tests.integration.sql_helpers import Db, crashed_write
from tests.integration.test_reliability import start_daemon, wait_for
from tests.integration.test_rollups_sql import records as boundary_records

pytestmark = pytest.mark.integration
pg_dsn = sql_helpers.pg_dsn  # fixture
my_dsn = sql_helpers.my_dsn  # fixture
db = sql_helpers.db  # fixture: PostgreSQL, SQLite and MariaDB

TABLES = ["tyk_aggregated", *(f"tyk_aggregated_{g}" for g in GRANULARITIES)]


def sink(db: Db, **meta: Any) -> summary.SummaryAggregateSink:
    m = agg.Meta(**db.meta, rollups=list(GRANULARITIES), **meta)
    return summary.sink_for("agg", m)


def batches() -> list[SinkBatch]:
    other = [Record(org_id="org2", api_id="api9", response_code=201, request_time=7, timestamp=r.timestamp) for r in boundary_records()]
    recs = boundary_records() + other
    return [SinkBatch("b1", recs[:4]), SinkBatch("b2", recs[4:7]), SinkBatch("b3", recs[7:])]


def dump(db: Db) -> dict[str, list[tuple[Any, ...]]]:
    return {t: db.rows(f'SELECT * FROM "{t}" ORDER BY id') for t in TABLES}


def wipe(db: Db) -> None:
    statements = [f'DELETE FROM "{t}"' for t in [*TABLES, "pump_applied_batches"]]
    if db.backend == "postgres":
        with psycopg.connect(db.target, autocommit=True) as conn:
            for s in statements:
                conn.execute(s.encode())
    elif db.backend == "mysql":
        for s in statements:
            sql_helpers.mysql_execute(db.target, s)
    else:
        import sqlite3

        with sqlite3.connect(db.target) as conn:
            for s in statements:
                conn.execute(s)


async def test_one_flush_of_many_batches_equals_writing_them_one_by_one(db: Db) -> None:
    s = sink(db)
    await s.start()
    for b in batches():
        await s.write(b)
    one_by_one = dump(db)
    wipe(db)
    assert await s.write_many(batches()) == {}
    await s.close()
    assert dump(db) == one_by_one
    assert sum(len(rows) for rows in one_by_one.values()) > 20


async def test_a_flush_skips_batches_and_parts_applied_before(db: Db) -> None:
    b1, b2, b3 = batches()
    s = sink(db)
    await s.start()
    for b in batches():
        await s.write(b)
    expected = dump(db)
    wipe(db)
    await s.write(b1)  # applied before the crash
    await s.write(SinkBatch("b2.0", b2.records[:1]))  # half of a split batch applied
    await s.write_many([b1, b2, b3])  # the flush after the restart holds all three again
    await s.write_many([b1, b2, b3])  # and a redelivered flush changes nothing
    await s.close()
    assert dump(db) == expected
    assert (s.applied, s.skipped) == (3 + 2 + 2, 1 + 3)


def hits(db: Db, table: str) -> int:
    if table not in {r[0] for r in db.rows("SELECT name FROM sqlite_master WHERE type = 'table'")}:
        return 0
    return int(db.rows(f"SELECT COALESCE(SUM(counter_hits), 0) FROM \"{table}\" WHERE dimension = '' AND dimension_value = 'total'")[0][0])


def test_sigkill_while_records_wait_for_the_flush_loses_and_doubles_nothing(tmp_path: Path, redis_url: str) -> None:
    db = Db("sqlite", str(tmp_path / "pump.sqlite"))
    meta = {**db.meta, "publish_interval": "60m", "rollups": ["minute", "hour", "day"]}
    config = write_config(
        tmp_path / "pump.json", redis_url, {"agg": {"type": "sql_aggregate", "meta": meta}},
        delivery={"claim_size": 500, "max_batches_in_flight": 8},
    )  # fmt: skip
    push(redis_url, msgpack_payloads(numbered(3000)))

    proc = start_daemon(config, tmp_path / "pump.log")
    try:
        wait_for(lambda: list_lengths(redis_url).get(BASE_LIST, 0) == 0, 60, "every record claimed", proc)
        wait_for(lambda: "Holding batches for the next aggregate flush" in (tmp_path / "pump.log").read_text(), 60, "a batch held", proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert [hits(db, t) for t in ("tyk_aggregated", "tyk_aggregated_hour")] == [0, 0]  # held, not written: a flush is 60 min away

    # a second crash, after a flush committed but before its batch was acknowledged
    async def flushed_then_died(batch_id: str, decoded: list[Record]) -> None:
        m = agg.Meta.model_validate(meta)
        s = summary.sink_for("agg", m)
        await s.start()
        await s.write_many([SinkBatch(batch_id, decoded)])
        await s.close()

    push(redis_url, msgpack_payloads(numbered(700)))  # 700 more, at the tail
    crashed_write(redis_url, BASE_LIST, 500, flushed_then_died)
    assert hits(db, "tyk_aggregated") == 500

    proc2 = run_once(config)  # restart: held batches come back under their ids (lease/adoption), flushed once
    assert proc2.returncode == 0, proc2.stderr[-4000:]
    assert sum(list_lengths(redis_url).values()) == 0
    for table in ("tyk_aggregated", "tyk_aggregated_minute", "tyk_aggregated_hour", "tyk_aggregated_day"):
        assert hits(db, table) == 3700, table
