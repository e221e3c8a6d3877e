"""Issue #3: a pump whose server is stopped for a while and started again loses nothing, and the
other pumps keep delivering on time meanwhile. Real PostgreSQL, stopped and restarted on the same
data; a CSV pump beside it; the real daemon."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psycopg
import pytest

from tests import servers
from tests.helpers import list_lengths, msgpack_payloads, numbered, pump_keys, push, write_config
from tests.integration.test_reliability import paths_in, start_daemon, stop, wait_for

pytestmark = pytest.mark.integration


def raw_rows(url: str) -> int:
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            return int(conn.execute("SELECT count(DISTINCT path) FROM tyk_analytics").fetchone()[0])  # type: ignore[index]
    except psycopg.Error:
        return -1


def test_postgres_stopped_and_started_again_loses_nothing_while_csv_keeps_up(tmp_path: Path, redis_url: str) -> None:
    if os.environ.get("PUMP_TEST_POSTGRES_DSN"):
        pytest.skip("needs a PostgreSQL this test can stop and start; unset PUMP_TEST_POSTGRES_DSN")
    work = tmp_path / "pg"
    pg = servers.start("postgres", work, persistent=True)
    port = pg.port
    out = tmp_path / "csv"
    pumps = {
        "sql": {"type": "sql", "meta": {"type": "postgres", "connection_string": pg.url}, "timeout": 5},
        "csv": {"type": "csv", "meta": {"csv_dir": str(out)}},
    }
    config = write_config(tmp_path / "pump.conf", redis_url, pumps, purge_chunk=1000, delivery={"backoff_initial": 0.2, "backoff_max": 1})
    proc = start_daemon(config, tmp_path / "pump.log")
    try:
        push(redis_url, msgpack_payloads(numbered(3000)))
        wait_for(lambda: raw_rows(pg.url) == 3000 and len(paths_in(out)) == 3000, 60, "both pumps to deliver the first wave", proc)

        pg.stop()  # the database goes away
        outage_started = time.monotonic()
        wave = numbered(12000)
        for r in wave:
            r.path = r.path.replace("/items/", "/during-outage/")
        push(redis_url, msgpack_payloads(wave))
        wait_for(lambda: len(paths_in(out)) == 15000, 60, "the CSV pump to deliver the second wave during the outage", proc)
        csv_caught_up_after = time.monotonic() - outage_started
        assert list_lengths(redis_url) == {}, "the gateway lists are drained while the database is down"
        assert raw_rows(pg.url) == -1, "the database really is down"
        time.sleep(3)  # stay down for a while longer: retries keep failing meanwhile

        pg = servers.start("postgres", work, persistent=True, port=port)  # and comes back, same data
        wait_for(lambda: raw_rows(pg.url) == 15000, 120, "the SQL pump to catch up after the restart", proc)
    finally:
        code = stop(proc)
        pg.stop()
    assert code == 0
    assert set(paths_in(out).values()) == {1}
    assert pump_keys(redis_url) == []
    log = (tmp_path / "pump.log").read_text()
    assert "Pump is failing" in log and "Pump recovered." in log
    print(f"\n[outage] CSV delivered the 12,000 records of the outage wave {csv_caught_up_after:.1f} s after the database stopped")
