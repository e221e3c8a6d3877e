"""Helpers of the SQL pump tests: a fresh PostgreSQL database per test, reading rows back,
pump files for both backends, and simulating a crashed pump that wrote a batch without
acknowledging it."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests import servers


def database_url(server_url: str, name: str) -> str:
    return server_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def pg_dsn(postgres_server: servers.Server) -> Iterator[str]:
    """A new, empty PostgreSQL database for this test (dropped afterwards)."""
    name = "pump_" + uuid.uuid4().hex[:12]
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(postgres_server.url, name)
    finally:
        with psycopg.connect(postgres_server.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def floats_for_numeric(conn: Any) -> None:
    """Read ``numeric`` columns (Tyk's type for Go's float64) as Python floats, as the pump wrote
    them: the stored decimal is the float's exact shortest text, so nothing is rounded."""
    from psycopg.types.numeric import FloatLoader

    conn.adapters.register_loader("numeric", FloatLoader)


@pytest.fixture
def my_dsn(mysql_server: servers.Server) -> Iterator[str]:
    """A new, empty database on the session's MariaDB (dropped afterwards)."""
    name = "pump_" + uuid.uuid4().hex[:12]
    mysql_execute(mysql_server.url, f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        yield database_url(mysql_server.url, name)
    finally:
        mysql_execute(mysql_server.url, f"DROP DATABASE IF EXISTS `{name}`")


def mysql_execute(dsn: str, query: str, params: tuple[Any, ...] = ()) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one query on MySQL/MariaDB with ANSI quotes (so ``"expireAt"`` works as on the
    others); DATETIME values come back as aware UTC datetimes (the pump writes UTC)."""
    import pymysql

    from pump.sinks.sql.mysql import parse_dsn

    kwargs, _, _ = parse_dsn(dsn)
    with pymysql.connect(**kwargs, autocommit=True, charset="utf8mb4") as conn, conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES')")
        cur.execute(query, params or None)
        names = [d[0] for d in cur.description or []]
        rows = [tuple(v.replace(tzinfo=UTC) if isinstance(v, datetime) else v for v in row) for row in cur.fetchall()]
    return names, rows


class Db:
    """Read rows back from either backend with the same calls."""

    def __init__(self, backend: str, target: str) -> None:
        self.backend = backend
        self.target = target

    @property
    def meta(self) -> dict[str, Any]:
        return {"type": self.backend, "connection_string": self.target}

    def rows(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r.values()) for r in self.dicts(query, params)]

    def dicts(self, query: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Rows as {column: value}; ``?`` placeholders work on both backends."""
        if self.backend == "postgres":
            with psycopg.connect(self.target) as pg:
                floats_for_numeric(pg)
                cur = pg.execute(query.replace("?", "%s").encode(), params)
                names = [d.name for d in cur.description or []]
                return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        if self.backend == "mysql":
            names, rows = mysql_execute(self.target, query.replace("?", "%s"), params)
            return [dict(zip(names, row, strict=True)) for row in rows]
        lite = sqlite3.connect(self.target)
        try:
            lcur = lite.execute(query, params)
            lnames = [d[0] for d in lcur.description]
            return [dict(zip(lnames, row, strict=True)) for row in lcur.fetchall()]
        finally:
            lite.close()

    def count(self, table: str) -> int:
        return int(self.rows(f'SELECT COUNT(*) FROM "{table}"')[0][0])

    def tables(self, prefix: str) -> list[str]:
        if self.backend == "postgres":
            names = [r[0] for r in self.rows("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")]
        elif self.backend == "mysql":
            names = [r[0] for r in self.rows("SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()")]
        else:
            names = [r[0] for r in self.rows("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return sorted(n for n in names if n == prefix or n.startswith(prefix + "_2") or n.startswith(prefix + "_1"))


@pytest.fixture(params=["postgres", "sqlite", "mysql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Db:
    """Each test using this runs three times: on a fresh PostgreSQL database, on a new SQLite file
    and on a fresh MariaDB database (``type: mysql``)."""
    if request.param == "postgres":
        dsn = request.getfixturevalue("pg_dsn")
        return Db("postgres", dsn)
    if request.param == "mysql":
        return Db("mysql", request.getfixturevalue("my_dsn"))
    return Db("sqlite", str(tmp_path / "pump.sqlite"))


def crashed_write(redis_url: str, list_name: str, count: int, write: Any) -> str:
    """Claim ``count`` records like a pump would, call ``write(batch_id, records)`` (the pump's
    write committed), then die without acknowledging: the batch goes back to the head of its
    list under the same id, as the lease reaper returns it. Returns the batch id."""
    import redis.asyncio as aioredis

    from pump.decode.msgpack import decode_record
    from pump.source.redis_list import RedisSource, SourceKey

    async def run() -> str:
        client = aioredis.Redis.from_url(redis_url)
        try:
            source = RedisSource(client, "pump", "crashed-instance", 60)
            claim = await source.claim(SourceKey(list_name, "msgpack", "pump"), count)
            assert claim is not None
            await write(claim.batch_id, [decode_record(raw) for raw in claim.raws])
            returned = await source.release(claim)
            assert returned == len(claim.raws)
            return claim.batch_id
        finally:
            await client.aclose()

    return asyncio.run(run())
