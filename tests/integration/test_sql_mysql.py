"""The ``mysql`` dialect (Tyk's ``type: mysql``) on a real MariaDB: Tyk's own aggregate rows through
the whole pipeline, raw rows written once per record, and a redelivered aggregate batch applied once."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pymysql
import pytest

from pump.sinks.base import SinkBatch
from pump.sinks.sql import aggregate as agg
from pump.sinks.sql import raw
from pump.sinks.sql.config import target_of
from pump.sinks.sql.mysql import parse_dsn
from tests import servers
from tests.helpers import ROOT, numbered, push, run_once, write_config

pytestmark = pytest.mark.integration

FIXTURE = json.loads((ROOT / "tests/fixtures/tyk/aggregates.json").read_text())
CASE = next(c for c in FIXTURE["cases"] if c["name"] == "main_track_all_paths_false")


@pytest.fixture
def my_dsn(mysql_server: servers.Server) -> Iterator[str]:
    """A new, empty database on the session's MariaDB (dropped afterwards)."""
    name = "pump_" + uuid.uuid4().hex[:12]
    kwargs, _, _ = parse_dsn(mysql_server.url)
    with pymysql.connect(**kwargs, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        yield mysql_server.url.rsplit("/", 1)[0] + "/" + name
    finally:
        with pymysql.connect(**kwargs, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


def dicts(dsn: str, query: str) -> list[dict[str, Any]]:
    kwargs, _, _ = parse_dsn(dsn)
    with pymysql.connect(**kwargs, cursorclass=pymysql.cursors.DictCursor) as conn, conn.cursor() as cur:
        cur.execute(query)
        return list(cur.fetchall())


def test_tyk_aggregate_rows_on_mariadb(tmp_path: Path, redis_url: str, my_dsn: str) -> None:
    push(redis_url, [bytes.fromhex(r["msgpack_hex"]) for r in CASE["records"]])
    meta = {"type": "mysql", "connection_string": my_dsn}
    agg_meta = {**meta, "store_analytics_per_minute": CASE["aggregation_time"] != 60}
    config = write_config(
        tmp_path / "pump.json", redis_url, {"agg": {"type": "sql_aggregate", "meta": agg_meta}, "raw": {"type": "sql", "meta": meta}}
    )
    proc = run_once(config)
    assert proc.returncode == 0, proc.stderr[-4000:]
    got = {r["id"]: r for r in dicts(my_dsn, "SELECT * FROM tyk_aggregated")}
    expected = {row["columns"]["id"]: row["columns"] for rows in CASE["sql_rows"].values() for row in rows}
    assert set(got) == set(expected)
    for rid, want in expected.items():
        have = got[rid]
        assert (have["counter_error_map"], have["counter_error_list"]) == ("{}", "[]")
        for column, value in want.items():
            if column == "counter_last_time":
                head, _, frac = value.rstrip("Z").partition(".")
                want_time = datetime.fromisoformat(f"{head}.{frac[:6].ljust(6, '0')}")  # DATETIME(6) in UTC
                assert have[column] == want_time, (want["dimension"], column)
            elif isinstance(value, float):
                assert have[column] == pytest.approx(value, rel=1e-15), (want["dimension"], want["dimension_value"], column)
            else:
                assert have[column] == value, (want["dimension"], want["dimension_value"], column)
    assert len(dicts(my_dsn, "SELECT id FROM tyk_analytics")) == len(CASE["records"])


def test_raw_and_aggregate_batches_are_written_once(my_dsn: str) -> None:
    async def run() -> None:
        m = raw.Meta(type="mysql", connection_string=my_dsn)
        sink = raw.SqlSink("sql", m, target_of(m))
        a = agg.Meta(type="mysql", connection_string=my_dsn)
        asink = agg.AggregateSink("agg", a, target_of(a), agg.AGGREGATE_SPEC, agg.aggregate_rows_of(a))
        records = numbered(50)
        for s in (sink, asink):
            await s.start()
            await s.write(SinkBatch("b1", records))
            await s.write(SinkBatch("b1", records))  # redelivered
            await s.close()
        assert sink.written == 50 and sink.duplicates == 50
        assert (asink.applied, asink.skipped) == (1, 1)

    asyncio.run(run())
    assert len(dicts(my_dsn, "SELECT id FROM tyk_analytics")) == 50
    total = dicts(my_dsn, "SELECT counter_hits FROM tyk_aggregated WHERE dimension = ''")
    assert [r["counter_hits"] for r in total] == [50]
