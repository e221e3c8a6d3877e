"""Tables: the names this pump may write, their shapes (:class:`TableSpec`), and :class:`Schema`,
which creates tables and indexes and adds missing columns to older tables.

Identifiers are never taken from data: every table name passes :func:`checked_table` (a fixed
prefix plus an optional ``_YYYYMMDD``) and is quoted with ``psycopg.sql.Identifier`` on
PostgreSQL. Values always travel as bind parameters or as escaped COPY text.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pump.errors import RetriableError, SinkError
from pump.gotime import shard_suffix
from pump.redact import scrub
from pump.sinks.sql.config import Target
from pump.sinks.sql.connect import PgPool, close_quietly
from pump.sinks.sql.errors import map_error

log = logging.getLogger(__name__)

_TABLE = re.compile(
    r"^(tyk_analytics|tyk_aggregated|tyk_uptime_analytics|tyk_analytics_graph|tyk_analytics_mcp|tyk_graph_aggregated|tyk_mcp_aggregated)"
    r"(_[0-9]{8})?$"
    r"|^tyk_aggregated_(minute|hour|day|month|year)$"  # the rollup tables (pump.aggregate.rollups)
)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
#: A ``table_name`` a user may configure (room left for ``_YYYYMMDD`` and index suffixes).
TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,40}$")
_CONFIGURED: set[str] = set()


def allow_table(prefix: str) -> str:
    """Accept ``prefix`` (a configured ``table_name``, already validated) in :func:`checked_table`."""
    if not TABLE_NAME.match(prefix):
        raise ValueError(f"refusing unexpected table name {prefix!r}")
    _CONFIGURED.add(prefix)
    return prefix


def checked_table(name: str) -> str:
    """A table name this pump may write: a known (or configured) prefix plus an optional
    ``_YYYYMMDD``, or a rollup table ``tyk_aggregated_<granularity>``."""
    if _TABLE.match(name):
        return name
    base = name[:-9] if len(name) > 9 and name[-9] == "_" and name[-8:].isdigit() else name
    if base not in _CONFIGURED:
        raise ValueError(f"refusing unexpected table name {name!r}")
    return name


def quote(name: str) -> str:
    """A double-quoted identifier for SQLite (and for text shown to users). Only names made of
    letters, digits and ``_`` are accepted, so quoting cannot be escaped."""
    if not _IDENT.match(name):
        raise ValueError(f"refusing unexpected identifier {name!r}")
    return f'"{name}"'


def shard_table(prefix: str, day: datetime | None) -> str:
    return checked_table(prefix if day is None else f"{prefix}_{shard_suffix(day)}")


#: Column kinds → (PostgreSQL type, SQLite type). ``numeric`` is what Tyk's gorm creates for a
#: Go ``float64`` on PostgreSQL (``decimal``); SQLite keeps ``REAL`` (its NUMERIC affinity would
#: turn 51.0 into the integer 51).
TYPES: dict[str, tuple[str, str]] = {
    "text": ("TEXT", "TEXT"),
    "bigint": ("BIGINT", "INTEGER"),
    "double": ("DOUBLE PRECISION", "REAL"),
    "numeric": ("NUMERIC", "REAL"),
    "bool": ("BOOLEAN", "INTEGER"),
    "timestamptz": ("TIMESTAMPTZ", "TEXT"),
}

#: PostgreSQL types the previous version of this pump created for today's ``numeric`` columns:
#: such a table is migrated only when asked (``migrate: true``), as it rewrites the table.
LEGACY_NUMERIC = frozenset({"double precision", "real"})


@dataclass(frozen=True, slots=True)
class TableSpec:
    """The shape of one family of tables (``prefix`` and its ``prefix_YYYYMMDD`` shards)."""

    prefix: str
    columns: tuple[tuple[str, str], ...]  # (name, kind)
    #: (index name suffix, columns) created as ``<table>_<suffix>`` unless omit_index_creation.
    indexes: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)


_SHARD = re.compile(r"^[0-9]{8}$")

#: information_schema ``data_type`` values that accept what the pump writes for each kind.
_COMPATIBLE: dict[str, frozenset[str]] = {
    "text": frozenset({"text", "character varying", "character"}),
    "bigint": frozenset({"bigint", "integer", "smallint", "numeric", "double precision", "real"}),
    "double": frozenset({"double precision", "real", "numeric"}),
    "numeric": frozenset({"numeric"}),
    "bool": frozenset({"boolean"}),
    "timestamptz": frozenset({"timestamp with time zone", "timestamp without time zone"}),
}


class Schema:
    """Creates and migrates the tables of one :class:`TableSpec`, remembering what exists.

    A new table is created with its primary key on ``id`` and its indexes in one transaction
    (instant on an empty table). An existing table — e.g. one Tyk Pump created — gets the
    columns it lacks; if it has no ``id`` column, one is added with a unique index (older rows
    keep NULL), because the exactly-once writes rely on ``ON CONFLICT (id)``. Missing ordinary
    indexes on an existing PostgreSQL table are built with ``CREATE INDEX CONCURRENTLY`` in the
    background so writes never wait for them. PostgreSQL DDL runs under an advisory lock so two
    pumps creating the same shard do not collide.
    """

    def __init__(self, spec: TableSpec, target: Target, omit_indexes: bool, migrate: bool = False) -> None:
        self.spec = spec
        self.target = target
        self.omit_indexes = omit_indexes
        self.migrate = migrate
        self.known: set[str] = set()
        self.background: set[asyncio.Task[None]] = set()

    def forget(self) -> None:
        self.known.clear()

    # -- PostgreSQL --------------------------------------------------------------------------

    async def ensure_pg(self, pool: PgPool, table: str) -> None:
        if table in self.known:
            return
        checked_table(table)
        async with pool.connection() as conn:
            try:
                missing_indexes = await self._pg_ddl(conn, table)
            except SinkError:
                raise
            except Exception as exc:
                raise map_error(exc, self.target, f"create table {table}") from None
        self.known.add(table)
        if missing_indexes:
            task = asyncio.create_task(self._pg_indexes_concurrently(pool, table, missing_indexes), name=f"index-{table}")
            self.background.add(task)
            task.add_done_callback(self.background.discard)

    async def _pg_ddl(self, conn: Any, table: str) -> list[tuple[str, tuple[str, ...]]]:
        from psycopg import sql

        ident = sql.Identifier(table)
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('pump-sql-ddl'))")
            cur = await conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = %s",
                (table,),
            )
            types = dict(await cur.fetchall())
            existing = set(types)
            if not existing:
                cols = sql.SQL(", ").join(
                    sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(TYPES[kind][0])) for name, kind in self.spec.columns
                )
                await conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY (id))").format(ident, cols))
                if not self.omit_indexes:
                    for suffix, columns in self.spec.indexes:
                        await conn.execute(self._pg_index_sql(table, suffix, columns, concurrently=False))
                log.info("Created table.", extra={"table": table, "database": self.target.description})
                return []
            await self._pg_legacy_types(conn, table, types)
            self._warn_on_types(table, types)
            for name, kind in self.spec.columns:
                if name not in existing:
                    await conn.execute(
                        sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                            ident, sql.Identifier(name), sql.SQL(TYPES[kind][0])
                        )
                    )
                    log.info("Added a missing column.", extra={"table": table, "column": name})
            if "id" not in existing:
                # A table created by Tyk Pump has no id: rows written from now on get one, and the
                # unique index is what ON CONFLICT (id) needs.
                await conn.execute(
                    sql.SQL("CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} (id)").format(sql.Identifier(f"{table}_idx_id"), ident)
                )
            if self.omit_indexes:
                return []
            cur = await conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s", (table,))
            have = {row[0] for row in await cur.fetchall()}
            return [(s, c) for s, c in self.spec.indexes if f"{table}_{s}" not in have]

    def legacy_columns(self, types: dict[str, str]) -> list[str]:
        """Columns of an existing table that the previous version of this pump created as
        ``double precision`` where Tyk (and this version) has ``numeric``."""
        return [name for name, kind in self.spec.columns if kind == "numeric" and types.get(name, "").lower() in LEGACY_NUMERIC]

    async def _pg_legacy_types(self, conn: Any, table: str, types: dict[str, str]) -> None:
        """A table made by the previous version: convert its columns with ``migrate: true``, else
        refuse to write (the error names the fix; records wait in Redis meanwhile).

        Through ``::text``: PostgreSQL prints a double exactly (shortest round trip), so the
        stored value keeps every digit, where a direct cast keeps only 15."""
        from psycopg import sql

        old = self.legacy_columns(types)
        if not old:
            return
        if not self.migrate:
            raise RetriableError(
                f"PostgreSQL at {self.target.description}: table {table} was created by an older version of this pump (or another tool) "
                f"({', '.join(old)} are double precision, Tyk's are numeric); set migrate: true in the pump's meta "
                "(uptime: in uptime_pump_config) to convert them once at start (it rewrites the table), or drop the table"
            )
        changes = sql.SQL(", ").join(
            sql.SQL("ALTER COLUMN {} TYPE NUMERIC USING {}::text::numeric").format(sql.Identifier(c), sql.Identifier(c)) for c in old
        )
        await conn.execute(sql.SQL("ALTER TABLE {} {}").format(sql.Identifier(table), changes))
        for c in old:
            types[c] = "numeric"
        log.info("Migrated columns to Tyk's types.", extra={"table": table, "columns": ",".join(old), "type": "numeric"})

    def _warn_on_types(self, table: str, types: dict[str, str]) -> None:
        """An existing table (e.g. created by another tool) whose column types differ from what
        this pump writes may refuse rows: say so once, at start, naming the columns."""
        odd = {name: types[name] for name, kind in self.spec.columns if name in types and types[name].lower() not in _COMPATIBLE[kind]}
        if odd:
            log.warning(
                "Existing table has columns of unexpected types; writes may be refused.",
                extra={"table": table, "columns": ", ".join(f"{n} {t}" for n, t in sorted(odd.items()))},
            )

    @staticmethod
    def _pg_index_sql(table: str, suffix: str, columns: tuple[str, ...], concurrently: bool) -> Any:
        from psycopg import sql

        return sql.SQL("CREATE INDEX {} IF NOT EXISTS {} ON {} ({})").format(
            sql.SQL("CONCURRENTLY") if concurrently else sql.SQL(""),
            sql.Identifier(f"{table}_{suffix}"),
            sql.Identifier(table),
            sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        )

    async def _pg_indexes_concurrently(self, pool: PgPool, table: str, indexes: list[tuple[str, tuple[str, ...]]]) -> None:
        """Build missing indexes of an existing table without blocking writes; failures are logged."""
        try:
            conn = await pool.dedicated()
        except SinkError as exc:
            log.warning("Could not build missing indexes.", extra={"table": table, "error": str(exc)})
            return
        try:
            for suffix, columns in indexes:
                try:
                    await conn.execute(self._pg_index_sql(table, suffix, columns, concurrently=True))
                    log.info("Created index.", extra={"table": table, "index": f"{table}_{suffix}"})
                except Exception as exc:
                    log.warning(
                        "Could not create index.",
                        extra={"table": table, "index": f"{table}_{suffix}", "error": scrub(str(exc), self.target.password)[:300]},
                    )
        finally:
            await close_quietly(conn)

    async def pg_shards(self, pool: PgPool) -> list[str]:
        async with pool.connection() as conn:
            try:
                cur = await conn.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_name LIKE %s",
                    (self.spec.prefix.replace("_", "\\_") + "\\_%",),
                )
                names = [row[0] for row in await cur.fetchall()]
            except Exception as exc:
                raise map_error(exc, self.target, "list shard tables") from None
        return sorted(n for n in names if _SHARD.match(n[len(self.spec.prefix) + 1 :]))

    # -- SQLite ------------------------------------------------------------------------------

    def ensure_sqlite(self, conn: sqlite3.Connection, table: str) -> None:
        """Create or migrate ``table`` (called in the SQLite worker thread)."""
        if table in self.known:
            return
        t = quote(checked_table(table))
        existing = {row[1] for row in conn.execute(f"PRAGMA table_info({t})")}
        if not existing:
            cols = ", ".join(f"{quote(name)} {TYPES[kind][1]}" for name, kind in self.spec.columns)
            conn.execute(f"CREATE TABLE IF NOT EXISTS {t} ({cols}, PRIMARY KEY (id))")
            log.info("Created table.", extra={"table": table, "database": self.target.description})
        else:
            for name, kind in self.spec.columns:
                if name not in existing:
                    conn.execute(f"ALTER TABLE {t} ADD COLUMN {quote(name)} {TYPES[kind][1]}")
                    log.info("Added a missing column.", extra={"table": table, "column": name})
            if "id" not in existing:
                conn.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {quote(table + '_idx_id')} ON {t} (id)")
        if not self.omit_indexes:
            for suffix, columns in self.spec.indexes:
                cols = ", ".join(quote(c) for c in columns)
                conn.execute(f"CREATE INDEX IF NOT EXISTS {quote(f'{table}_{suffix}')} ON {t} ({cols})")
        self.known.add(table)

    def sqlite_shards(self, conn: sqlite3.Connection) -> list[str]:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB ?", (self.spec.prefix + "_[0-9]*",))
        return sorted(r[0] for r in rows if _SHARD.match(r[0][len(self.spec.prefix) + 1 :]))

    async def close(self) -> None:
        for task in list(self.background):
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)


def startup_tables(prefix: str, sharding: bool, now: datetime) -> list[str]:
    """Tables prepared at start: the table itself, or today's shard (as Tyk does)."""
    return [shard_table(prefix, now if sharding else None)]
