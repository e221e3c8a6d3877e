"""The connection side every SQL sink shares (:class:`Backend`), and small helpers of the sinks."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from pump.gotime import LOCAL_ZONE
from pump.sinks.sql import mysql
from pump.sinks.sql.config import SqlMeta, Target, pg_connect_kwargs
from pump.sinks.sql.connect import PgPool, SqliteDb
from pump.sinks.sql.errors import map_error
from pump.sinks.sql.mysql import MysqlDb
from pump.sinks.sql.schema import Schema, TableSpec, startup_tables

T = TypeVar("T")


class Backend:
    """The connection side every SQL sink shares: a PostgreSQL pool or a SQLite file, plus the
    schema of its table family. The sinks keep only what they write."""

    def __init__(self, meta: SqlMeta, target: Target, spec: TableSpec, concurrency: int = 1) -> None:
        self.meta = meta
        self.target = target
        self.schema = Schema(spec, target, meta.omit_index_creation, meta.migrate)
        self.pool: PgPool | None = PgPool(target, pg_connect_kwargs(meta, target.dsn), concurrency) if target.is_postgres else None
        self.my: MysqlDb | None = MysqlDb(target) if target.is_mysql else None
        self.db: SqliteDb | None = SqliteDb(target) if target.backend == "sqlite" else None

    async def prepare(
        self,
        prefix: str,
        pg_setup: Callable[[Any], Any] | None = None,
        sqlite_setup: Callable[[sqlite3.Connection], None] | None = None,
        mysql_setup: Callable[[Any], None] | None = None,
    ) -> None:
        """Create or migrate the tables used at start (today's shard when sharding; every shard
        with ``migrate_sharded_tables``), after the optional setup (e.g. the ledger table)."""
        sharding, migrate = self.meta.table_sharding, self.meta.migrate_sharded_tables
        tables = startup_tables(prefix, sharding, datetime.now(LOCAL_ZONE))
        if self.my is not None:
            await self.my.run(lambda conn: self._prepare_mysql(conn, tables, mysql_setup), "create the tables")
            return
        if self.pool is not None:
            if pg_setup is not None:
                async with self.pool.connection() as conn:
                    try:
                        await pg_setup(conn)
                    except Exception as exc:
                        raise map_error(exc, self.target, "prepare the database") from None
            if sharding and migrate:
                tables = sorted(set(tables) | set(await self.schema.pg_shards(self.pool)))
            for table in tables:
                await self.schema.ensure_pg(self.pool, table)
            return
        assert self.db is not None

        def prepare(conn: sqlite3.Connection) -> None:
            if sqlite_setup is not None:
                sqlite_setup(conn)
            names = list(tables)
            if sharding and migrate:
                names = sorted(set(names) | set(self.schema.sqlite_shards(conn)))
            for table in names:
                self.schema.ensure_sqlite(conn, table)

        await self.db.run(prepare, "create the tables")

    def _prepare_mysql(self, conn: Any, tables: list[str], setup: Callable[[Any], None] | None) -> None:
        if setup is not None:
            setup(conn)
        for table in tables:
            self.ensure_mysql(conn, table)

    def ensure_mysql(self, conn: Any, table: str) -> None:
        if table not in self.schema.known:
            mysql.ensure_table(conn, self.schema.spec, table, self.meta.omit_index_creation, self.target.description)
            self.schema.known.add(table)

    async def close(self) -> None:
        await self.schema.close()
        if self.my is not None:
            await self.my.close()
        if self.pool is not None:
            await self.pool.close()
        if self.db is not None:
            await self.db.close()

    async def check(self) -> None:
        """``SELECT 1``, for ``pump validate --check``."""
        if self.pool is not None:
            async with self.pool.connection() as conn:
                try:
                    await conn.execute("SELECT 1")
                except Exception as exc:
                    raise map_error(exc, self.target, "run SELECT 1") from None
        elif self.my is not None:
            await self.my.run(lambda conn: conn.ping(), "run SELECT 1")
        else:
            assert self.db is not None
            await self.db.run(lambda conn: conn.execute("SELECT 1").fetchone(), "open the database")


def chunks(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def concurrency_of(ctx_config: Any, pump: str) -> int:
    """How many writes the delivery layer may run at once for this pump (the pool size)."""
    try:
        return int(ctx_config.delivery_for(pump).concurrency)
    except Exception:
        return 1
