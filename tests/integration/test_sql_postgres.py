"""The SQL sinks against a real PostgreSQL 15: errors, migrations, exactly-once under splits and
concurrency, the upsert arithmetic against the reference ``merge_row``, odd data."""

from __future__ import annotations

import asyncio
import random
import socket
import subprocess
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pump.aggregate.sql_rows import SQL_COLUMNS, AggregateRow, merge_row
from pump.errors import BatchDataError, RetriableError
from pump.record import Record
from pump.sinks.base import SinkBatch
from pump.sinks.sql import aggregate as agg
from pump.sinks.sql import raw
from pump.sinks.sql.config import target_of
from tests import servers
from tests.helpers import ROOT, numbered, random_aggregate_rows
from tests.integration import sql_helpers
from tests.integration.sql_helpers import database_url

pytestmark = pytest.mark.integration
pg_dsn = sql_helpers.pg_dsn  # fixture

T = datetime(2024, 3, 10, 14, 5, tzinfo=UTC)


def raw_sink(dsn: str, **meta: Any) -> raw.SqlSink:
    m = raw.Meta(type="postgres", connection_string=dsn, **meta)
    return raw.SqlSink("sql", m, target_of(m))


def agg_sink(dsn: str, name: str = "agg", rows_of: agg.RowsOf | None = None, **meta: Any) -> agg.AggregateSink:
    m = agg.Meta(type="postgres", connection_string=dsn, **meta)
    return agg.AggregateSink(name, m, target_of(m), agg.AGGREGATE_SPEC, rows_of or agg.aggregate_rows_of(m))


def fetch(dsn: str, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        sql_helpers.floats_for_numeric(conn)
        return conn.execute(query.encode(), params).fetchall()


def execute(dsn: str, query: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(query.encode())


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


# --------------------------------------------------------------------------- errors


@pytest.fixture
def roles(postgres_server: servers.Server, pg_dsn: str) -> str:
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        for role, option in (("pump_nologin", "NOLOGIN"), ("pump_weak", "LOGIN")):
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                conn.execute(f"CREATE ROLE {role} {option}")
    return pg_dsn


@pytest.mark.parametrize(
    ("case", "phrase"),
    [
        ("nologin", "refused the login"),
        ("missing_db", "the database does not exist"),
        ("permission", "permission denied to create table tyk_analytics"),
        ("down", "is not reachable"),
        ("down_keywords", "is not reachable"),
    ],
)
async def test_start_errors_are_clear_retriable_and_hide_the_password(roles: str, case: str, phrase: str) -> None:
    base = roles.rsplit("/", 1)[0]
    db = roles.rsplit("/", 1)[1]
    port = free_port()
    dsn = {
        "nologin": base.replace("postgres@", "pump_nologin:supersecret@") + f"/{db}",
        "missing_db": base.replace("postgres@", "postgres:supersecret@") + "/no_such_database",
        "permission": base.replace("postgres@", "pump_weak:supersecret@") + f"/{db}",
        "down": f"postgresql://postgres:supersecret@127.0.0.1:{port}/x",
        "down_keywords": f"host=127.0.0.1 port={port} user=u password=supersecret dbname=x",
    }[case]
    sink = raw_sink(dsn)
    with pytest.raises(RetriableError) as info:
        await sink.start()
    await sink.close()
    message = str(info.value)
    assert phrase in message
    assert "supersecret" not in message
    assert "\n" not in message
    assert message.startswith("PostgreSQL at postgresql://")


async def test_lost_connection_is_retriable_and_the_next_write_reconnects(pg_dsn: str) -> None:
    sink = raw_sink(pg_dsn)
    await sink.start()
    await sink.write(SinkBatch("a", numbered(10)))
    fetch(pg_dsn, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pump' AND pid <> pg_backend_pid()")
    with pytest.raises(RetriableError, match=r"not reachable|failed to write"):
        await sink.write(SinkBatch("b", numbered(20)))
    await sink.write(SinkBatch("b", numbered(20)))  # the delivery layer retries: a fresh connection
    await sink.close()
    assert fetch(pg_dsn, "SELECT COUNT(*) FROM tyk_analytics") == [(20,)]


async def test_dropped_table_is_recreated_on_retry(pg_dsn: str) -> None:
    sink = raw_sink(pg_dsn)
    await sink.start()
    execute(pg_dsn, "DROP TABLE tyk_analytics")
    with pytest.raises(RetriableError, match="table or column missing"):
        await sink.write(SinkBatch("a", numbered(5)))
    await sink.write(SinkBatch("a", numbered(5)))
    await sink.close()
    assert fetch(pg_dsn, "SELECT COUNT(*) FROM tyk_analytics") == [(5,)]


async def test_value_out_of_range_is_a_data_error(pg_dsn: str) -> None:
    sink = raw_sink(pg_dsn)
    await sink.start()
    with pytest.raises(BatchDataError, match="out of range"):
        await sink.write(SinkBatch("a", [*numbered(3), Record(content_length=1 << 63, org_id="o")]))
    await sink.close()
    assert fetch(pg_dsn, "SELECT COUNT(*) FROM tyk_analytics") == [(0,)]  # one transaction: nothing half-written


# --------------------------------------------------------------------------- raw


async def test_raw_same_batch_twice_writes_each_row_once(pg_dsn: str) -> None:
    sink = raw_sink(pg_dsn, postgres={"prefer_simple_protocol": True})
    await sink.start()
    records = numbered(2500)
    await sink.write(SinkBatch("x", records))
    first = fetch(pg_dsn, 'SELECT id, path, timestamp, "expireAt", tags FROM tyk_analytics ORDER BY id')
    await sink.write(SinkBatch("x", records))
    await sink.write(SinkBatch("x.1", records[1250:]))
    await sink.close()
    assert fetch(pg_dsn, 'SELECT id, path, timestamp, "expireAt", tags FROM tyk_analytics ORDER BY id') == first
    assert len(first) == 2500
    assert sink.duplicates == 2500 + 1250


async def test_raw_columns_and_types(pg_dsn: str) -> None:
    sink = raw_sink(pg_dsn)
    await sink.start()
    r = Record(
        method="POST", host="h:8080", path="/p", raw_path="/p", content_length=7, user_agent="ua", day=15, month=1,
        year=2024, hour=13, response_code=201, api_key="k", timestamp=T, api_version="v1", api_name="Users",
        api_id="a", org_id="o", oauth_id="oa", request_time=12, raw_request="UkVR", raw_response="UkVT",
        ip_address="10.0.0.1", geo_country_iso_code="GB", geo_city_geoname_id=2643743, geo_location_latitude=51.5085,
        geo_location_longitude=-0.1257, geo_location_time_zone="Europe/London", network_open_connections=1,
        network_closed_connections=2, network_bytes_in=3, network_bytes_out=4, latency_total=12, latency_upstream=10,
        latency_gateway=2, tags=["key-k", "org-o"], alias="ada", track_path=True, expire_at=T + timedelta(days=7),
        original_path="/orig", listen_path="/l/", timestamp_ns=int(T.timestamp()) * 10**9 + 123456789,
    )  # fmt: skip
    await sink.write(SinkBatch("x", [r]))
    await sink.close()
    with psycopg.connect(pg_dsn) as conn:
        sql_helpers.floats_for_numeric(conn)
        cur = conn.execute("SELECT * FROM tyk_analytics")
        row = dict(zip([d.name for d in cur.description or []], cur.fetchone() or (), strict=True))
        types: dict[str, str] = dict(conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'tyk_analytics'"
        ).fetchall())  # fmt: skip
    assert list(row) == list(raw.COLUMN_NAMES)
    assert row["id"] == raw.rid(r) and len(row["id"]) == 32
    assert row["timestamp"] == T + timedelta(microseconds=123456)  # nanoseconds cut to PostgreSQL's microseconds
    assert row["expireAt"] == T + timedelta(days=7)
    assert (row["month"], row["responsecode"], row["trackpath"], row["geo_location_longitude"]) == (1, 201, True, -0.1257)
    assert row["tags"] == '["key-k","org-o"]'
    assert (row["network_bytes_out"], row["latency_gateway"], row["originalpath"], row["listenpath"]) == (4, 2, "/orig", "/l/")
    assert types["timestamp"] == "timestamp with time zone" and types["month"] == "bigint" and types["trackpath"] == "boolean"
    assert types["geo_location_latitude"] == types["geo_location_longitude"] == "numeric"  # Tyk's type (issue 11)


async def test_mcp_records_are_skipped_graph_records_kept(pg_dsn: str) -> None:
    sink = raw_sink(pg_dsn)
    await sink.start()
    records = numbered(3)
    records[0].mcp_stats = {"IsMCP": True}
    records[1].graphql_stats = {"IsGraphQL": True}
    await sink.write(SinkBatch("x", records))
    await sink.close()
    assert fetch(pg_dsn, "SELECT path FROM tyk_analytics ORDER BY path") == [("/items/1",), ("/items/2",)]


async def test_undecodable_bytes_and_nul_become_replacement_characters(pg_dsn: str) -> None:
    bad = "/caf\udce9/x\x00y"  # how the decoder keeps a non-UTF-8 byte (surrogateescape), plus a NUL
    sink = raw_sink(pg_dsn)
    a = agg_sink(pg_dsn, track_all_paths=True)
    for s in (sink, a):
        await s.start()
        await s.write(SinkBatch("x", [Record(org_id="o", api_id="a", path=bad, tags=["t\udce9"], response_code=200, timestamp=T)]))
        await s.close()
    assert fetch(pg_dsn, "SELECT path, tags FROM tyk_analytics") == [("/caf\ufffd/x\ufffdy", '["t\ufffd"]')]
    assert fetch(pg_dsn, "SELECT counter_identifier FROM tyk_aggregated WHERE dimension = 'endpoints'") == [("/caf\ufffd/x\ufffdy",)]


# --------------------------------------------------------------------------- schema


async def test_table_created_by_tyk_is_migrated(pg_dsn: str) -> None:
    execute(pg_dsn, "CREATE TABLE tyk_analytics (method TEXT, path TEXT, responsecode BIGINT, timestamp TIMESTAMPTZ, orgid TEXT)")
    execute(pg_dsn, "INSERT INTO tyk_analytics VALUES ('GET', '/old', 200, now(), 'o')")
    sink = raw_sink(pg_dsn)
    await sink.start()
    await asyncio.gather(*sink.schema.background)  # missing indexes are built CONCURRENTLY in the background
    records = numbered(4)
    await sink.write(SinkBatch("x", records))
    await sink.write(SinkBatch("x", records))
    await sink.close()
    columns = {r[0] for r in fetch(pg_dsn, "SELECT column_name FROM information_schema.columns WHERE table_name = 'tyk_analytics'")}
    assert columns == set(raw.COLUMN_NAMES)
    indexes = {r[0] for r in fetch(pg_dsn, "SELECT indexname FROM pg_indexes WHERE tablename = 'tyk_analytics'")}
    assert indexes == {"tyk_analytics_idx_id"} | {
        f"tyk_analytics_idx_{c}" for c in ("responsecode", "apikey", "timestamp", "apiid", "orgid", "oauthid")
    }
    assert fetch(pg_dsn, "SELECT COUNT(*), COUNT(id) FROM tyk_analytics") == [(5, 4)]


async def test_migrate_sharded_tables_adds_columns_to_every_shard(pg_dsn: str) -> None:
    execute(pg_dsn, "CREATE TABLE tyk_aggregated_20190101 (id TEXT PRIMARY KEY, org_id TEXT, counter_hits BIGINT)")
    execute(pg_dsn, "CREATE TABLE tyk_aggregated_20190102 (id TEXT PRIMARY KEY, org_id TEXT)")

    def columns(table: str) -> int:
        return len(fetch(pg_dsn, "SELECT 1 FROM information_schema.columns WHERE table_name = %s", (table,)))

    plain = agg_sink(pg_dsn, table_sharding=True)
    await plain.start()
    await plain.close()
    assert (columns("tyk_aggregated_20190101"), columns("tyk_aggregated_20190102")) == (3, 2)  # only today's shard at start
    migrating = agg_sink(pg_dsn, table_sharding=True, migrate_sharded_tables=True)
    await migrating.start()
    await migrating.close()
    assert columns("tyk_aggregated_20190101") == columns("tyk_aggregated_20190102") == len(agg.AGGREGATE_SPEC.columns)
    assert len(agg.AGGREGATE_SPEC.columns) == len(SQL_COLUMNS) + 2  # + counter_error_map, counter_error_list


async def test_omit_index_creation(pg_dsn: str) -> None:
    for s in (raw_sink(pg_dsn, omit_index_creation=True), agg_sink(pg_dsn, omit_index_creation=True)):
        await s.start()
        await s.close()
    indexes = {r[0] for r in fetch(pg_dsn, "SELECT indexname FROM pg_indexes WHERE tablename LIKE 'tyk_%%'")}
    assert indexes == {"tyk_analytics_pkey", "tyk_aggregated_pkey"}


# --------------------------------------------------------------------------- aggregates: exactly once


def hits(dsn: str) -> int:
    return int(fetch(dsn, "SELECT COALESCE(SUM(counter_hits), 0) FROM tyk_aggregated WHERE dimension = ''")[0][0])


def records(n: int) -> list[Record]:
    return [Record(org_id="o", api_id=f"api{i % 3}", response_code=200 if i % 4 else 500, latency_total=i, timestamp=T) for i in range(n)]


async def test_same_batch_id_twice_counts_once(pg_dsn: str) -> None:
    sink = agg_sink(pg_dsn)
    await sink.start()
    batch = SinkBatch("b", records(40))
    await sink.write(batch)
    before = fetch(pg_dsn, "SELECT * FROM tyk_aggregated ORDER BY id")
    await sink.write(batch)
    await sink.close()
    assert fetch(pg_dsn, "SELECT * FROM tyk_aggregated ORDER BY id") == before
    assert (sink.applied, sink.skipped, hits(pg_dsn)) == (1, 1, 40)


async def test_split_halves_and_redelivered_whole_batch_count_each_record_once(pg_dsn: str) -> None:
    recs = records(40)
    sink = agg_sink(pg_dsn)
    await sink.start()
    await sink.write(SinkBatch("b.0", recs[:20]))  # delivery split the batch; the first half landed
    await sink.write(SinkBatch("b.0.1", recs[10:20]))  # a deeper split of an applied half: skipped
    assert hits(pg_dsn) == 20
    await sink.write(SinkBatch("b", recs))  # the process died; the whole batch comes back
    assert hits(pg_dsn) == 40
    await sink.write(SinkBatch("b.1", recs[20:]))  # and its other half, late: ancestor applied
    await sink.write(SinkBatch("b", recs))
    await sink.close()
    assert hits(pg_dsn) == 40
    assert {r[0] for r in fetch(pg_dsn, "SELECT batch_id FROM pump_applied_batches")} == {"b.0", "b"}


async def test_concurrent_writers_of_one_batch_apply_it_once(pg_dsn: str) -> None:
    sinks = [agg_sink(pg_dsn) for _ in range(4)]
    for s in sinks:
        await s.start()
    batch = SinkBatch("same", records(200))
    await asyncio.gather(*(s.write(batch) for s in sinks))
    for s in sinks:
        await s.close()
    assert sum(s.applied for s in sinks) == 1
    assert hits(pg_dsn) == 200


async def test_ledger_is_per_pump_and_pruned(pg_dsn: str) -> None:
    a, b = agg_sink(pg_dsn, name="a"), agg_sink(pg_dsn, name="b", table_sharding=True)
    for s in (a, b):
        await s.start()
        await s.write(SinkBatch("same-id", records(10)))
    execute(pg_dsn, "UPDATE pump_applied_batches SET applied_at = now() - interval '8 days' WHERE pump = 'a'")
    await a._prune()
    for s in (a, b):
        await s.close()
    assert (a.applied, b.applied) == (1, 1)
    assert fetch(pg_dsn, "SELECT pump FROM pump_applied_batches") == [("b",)]


async def test_dimension_values_too_long_to_index_are_skipped(pg_dsn: str) -> None:
    rng = random.Random(7)
    long_path = "/" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(5000))
    sink = agg_sink(pg_dsn, track_all_paths=True)
    await sink.start()
    await sink.write(SinkBatch("x", [Record(org_id="o", api_id="a", path=long_path, response_code=200, timestamp=T)]))
    await sink.close()
    dims = dict(fetch(pg_dsn, "SELECT dimension, SUM(counter_hits) FROM tyk_aggregated GROUP BY dimension"))
    assert dims == {"": 1, "apiid": 1}


# --------------------------------------------------------------------------- the arithmetic


async def test_upsert_arithmetic_equals_the_reference_merge(pg_dsn: str) -> None:
    rng = random.Random(1234)
    ids = [f"id{i:03d}" for i in range(60)]
    batches = [random_aggregate_rows(rng, rng.sample(ids, 40)) for _ in range(6)]
    expected: dict[str, AggregateRow] = {}
    for rows in batches:
        for row in rows:
            expected[row.id] = row if row.id not in expected else merge_row(expected[row.id], row)
    queue = list(batches)

    def rows_of(_: Sequence[Any]) -> dict[str, list[AggregateRow]]:
        return {"tyk_aggregated": sorted(queue.pop(0), key=lambda r: r.id)}

    sink = agg_sink(pg_dsn, rows_of=rows_of)
    await sink.start()
    for i in range(len(batches)):
        await sink.write(SinkBatch(f"b{i}", [None]))
    await sink.close()
    with psycopg.connect(pg_dsn) as conn:
        sql_helpers.floats_for_numeric(conn)
        got = {r[0]: AggregateRow(*r) for r in conn.execute(f"SELECT {', '.join(SQL_COLUMNS)} FROM tyk_aggregated").fetchall()}
    assert set(got) == set(expected)
    for rid, want in expected.items():
        have = got[rid]
        for column, w, h in zip(SQL_COLUMNS, want, have, strict=True):
            if isinstance(w, float):
                assert h == pytest.approx(w, rel=1e-12, abs=1e-9), (rid, column)
            else:
                assert h == w, (rid, column)


def test_database_url_helper() -> None:
    assert database_url("postgresql://postgres@127.0.0.1:5/postgres", "x") == "postgresql://postgres@127.0.0.1:5/x"


# --------------------------------------------------------------------------- outage at start


def test_database_down_at_start_is_waited_for_then_written(tmp_path: Path, redis_url: str) -> None:
    """The pump starts while PostgreSQL is down: it logs the one-line reason, retries, and writes
    everything once the server is up — no record lost, nothing written twice."""
    from tests.helpers import msgpack_payloads, pump_cmd, push, write_config
    from tests.servers.postgres import start_postgres

    port = free_port()
    dsn = f"postgresql://postgres:supersecret@127.0.0.1:{port}/postgres"
    push(redis_url, msgpack_payloads(numbered(500)))
    config = write_config(
        tmp_path / "pump.json",
        redis_url,
        {"sql": {"type": "sql", "meta": {"type": "postgres", "connection_string": dsn}},
         "agg": {"type": "sql_aggregate", "meta": {"type": "postgres", "connection_string": dsn}}},
        delivery={"backoff_initial": 0.2, "backoff_max": 1},
    )  # fmt: skip
    proc = subprocess.Popen(pump_cmd("run", "--once", "--config", str(config)), cwd=ROOT, stderr=subprocess.PIPE, text=True)
    server = None
    try:
        time.sleep(2.5)
        assert proc.poll() is None  # still waiting for the database
        (tmp_path / "pg").mkdir()
        server = start_postgres(tmp_path / "pg", port=port)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
        assert "is not reachable" in err and "supersecret" not in err
        assert fetch(server.url, "SELECT COUNT(*) FROM tyk_analytics") == [(500,)]
        assert fetch(server.url, "SELECT counter_hits FROM tyk_aggregated WHERE dimension = ''") == [(500,)]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        if server is not None:
            server.stop()


async def test_existing_columns_of_unexpected_types_are_named_at_start(pg_dsn: str, caplog: pytest.LogCaptureFixture) -> None:
    execute(pg_dsn, "CREATE TABLE tyk_analytics (id TEXT PRIMARY KEY, tags TEXT[], trackpath BIGINT, path VARCHAR(255))")
    sink = raw_sink(pg_dsn, omit_index_creation=True)
    with caplog.at_level("WARNING"):
        await sink.start()
    await sink.close()
    warned = [r for r in caplog.records if r.getMessage().startswith("Existing table has columns of unexpected types")]
    assert [getattr(r, "columns", "") for r in warned] == ["tags ARRAY, trackpath bigint"]
