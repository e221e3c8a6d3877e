"""The ``mysql`` dialect (Tyk's ``type: mysql``) on a real MariaDB, beyond what the shared SQL
tests check on it (tests/integration/sql_helpers.py ``db`` runs Tyk's golden rows on MariaDB too):
Tyk's Go connection string, login errors, and redelivered batches written once."""

from __future__ import annotations

import asyncio
from typing import Any

import pymysql
import pytest

from pump.errors import RetriableError
from pump.sinks.base import SinkBatch
from pump.sinks.sql import aggregate as agg
from pump.sinks.sql import raw
from pump.sinks.sql.config import target_of
from pump.sinks.sql.mysql import parse_dsn
from tests.helpers import numbered
from tests.integration import sql_helpers

pytestmark = pytest.mark.integration


my_dsn = sql_helpers.my_dsn  # fixture: a fresh database on the session's MariaDB


def dicts(dsn: str, query: str) -> list[dict[str, Any]]:
    kwargs, _, _ = parse_dsn(dsn)
    with pymysql.connect(**kwargs, cursorclass=pymysql.cursors.DictCursor) as conn, conn.cursor() as cur:
        cur.execute(query)
        return list(cur.fetchall())


def go_dsn(url: str, password: str | None = None) -> str:
    """The same server as Tyk's Go form ``user:pass@tcp(host:port)/db?parseTime=True``."""
    kwargs, _, real = parse_dsn(url)
    secret = real if password is None else password
    return f"{kwargs['user']}:{secret}@tcp({kwargs['host']}:{kwargs['port']})/{kwargs['database']}?parseTime=True&loc=Local"


def test_tyks_go_connection_string_writes_and_a_wrong_password_is_a_clear_retriable_error(my_dsn: str) -> None:
    async def run() -> None:
        m = raw.Meta(type="mysql", connection_string=go_dsn(my_dsn))
        sink = raw.SqlSink("sql", m, target_of(m))
        await sink.start()
        await sink.write(SinkBatch("b", numbered(3)))
        await sink.close()
        bad = raw.Meta(type="mysql", connection_string=go_dsn(my_dsn, "wrong-S3cret"))
        refused = raw.SqlSink("sql", bad, target_of(bad))
        with pytest.raises(RetriableError) as err:
            await refused.start()
        await refused.close()
        assert "refused the login" in str(err.value) and "fix user/password" in str(err.value)
        assert "wrong-S3cret" not in str(err.value)

    asyncio.run(run())
    assert len(dicts(my_dsn, "SELECT id FROM tyk_analytics")) == 3


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


def test_only_time_columns_lose_the_utc_offset(my_dsn: str) -> None:
    """DATETIME has no offset, so the pump drops ``+00:00`` from its time text — from the time
    columns only: a text value that looks like a time is stored as it came."""
    text = "2024-01-01 00:00:00.000000+00:00"

    async def run() -> None:
        m = raw.Meta(type="mysql", connection_string=my_dsn)
        sink = raw.SqlSink("sql", m, target_of(m))
        await sink.start()
        r = numbered(1)[0]
        r.user_agent = r.alias = text
        await sink.write(SinkBatch("b", [r]))
        await sink.close()

    asyncio.run(run())
    (row,) = dicts(my_dsn, "SELECT useragent, alias, timestamp FROM tyk_analytics")
    assert (row["useragent"], row["alias"]) == (text, text)
    assert row["timestamp"].year >= 2019
