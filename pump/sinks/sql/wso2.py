"""``sql_aggregate`` with ``mode: wso2_summary``: WSO2 API Manager's summary tables (docs/wso2-summary.md).

Rows come from :mod:`pump.aggregate.wso2`; this module creates the tables (the seed's columns,
``VARCHAR(254)``/``BIGINT``, its primary keys) and upserts rows with ``INSERT … ON CONFLICT
(<primary key>) DO UPDATE`` rendered from the columns' merge rules, exactly once per batch id:
the id goes into the ``pump_applied_batches`` ledger in the same transaction (split batches
handled by :func:`~pump.sinks.sql.ledger.pending_parts`, as for ``tyk_aggregated``).

One table per summary and granularity (``rollups:``, all five when unset), e.g.
``ApiUserPerAppAgg_HOURS``; ``ApiLastAccessSummary`` has none. ``retention_days`` of a rollup
deletes that granularity's rows whose ``AGG_TIMESTAMP`` is older, when the ledger is pruned.
Identifiers are the constants of :mod:`pump.aggregate.wso2` only, quoted; values are parameters.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from typing import Any

from pump.aggregate.rollups import GRANULARITIES, SqlRollup, ordered
from pump.aggregate.wso2 import TABLES, TEXT_LIMIT, Merge, Table, summary_rows
from pump.errors import SinkError
from pump.sinks.base import SinkBatch
from pump.sinks.sql.backend import Backend, chunks
from pump.sinks.sql.config import SqlMeta, Target
from pump.sinks.sql.connect import sqlite_transaction
from pump.sinks.sql.errors import map_error
from pump.sinks.sql.ledger import Ledger, pending_parts
from pump.sinks.sql.rollups import cutoff
from pump.sinks.sql.schema import quote

log = logging.getLogger(__name__)

_PG_TYPES = {"bigint": "BIGINT", "text": f"VARCHAR({TEXT_LIMIT})"}
_LITE_TYPES = {"bigint": "INTEGER", "text": "TEXT"}


def ddl(table: Table, name: str, postgres: bool) -> str:
    types = _PG_TYPES if postgres else _LITE_TYPES
    cols = ", ".join(f"{quote(c.name)} {types[c.kind]}{' NOT NULL' if c.merge is Merge.KEY else ''}" for c in table.columns)
    key = ", ".join(quote(k) for k in table.key)
    return f"CREATE TABLE IF NOT EXISTS {quote(name)} ({cols}, PRIMARY KEY ({key}))"


def upsert(table: Table, name: str, postgres: bool) -> str:
    """The upsert of one table, from the merge rules (``pump.aggregate.wso2.merge`` in SQL)."""
    t = quote(name)
    greatest = "GREATEST" if postgres else "max"
    sets = []
    for c in table.columns:
        q = quote(c.name)
        if c.merge is Merge.SUM:
            sets.append(f"{q} = COALESCE({t}.{q}, 0) + COALESCE(excluded.{q}, 0)")
        elif c.merge is Merge.MAX:
            sets.append(f"{q} = COALESCE({greatest}({t}.{q}, excluded.{q}), {t}.{q}, excluded.{q})")
        elif c.merge is Merge.LATEST:
            sets.append(f"{q} = COALESCE(excluded.{q}, {t}.{q})")
    cols = ", ".join(quote(c.name) for c in table.columns)
    mark = "%s" if postgres else "?"
    marks = ", ".join(mark for _ in table.columns)
    key = ", ".join(quote(k) for k in table.key)
    return f"INSERT INTO {t} ({cols}) VALUES ({marks}) ON CONFLICT ({key}) DO UPDATE SET {', '.join(sets)}"


class Wso2SummarySink:
    """Upserts WSO2 summary rows, exactly once per batch id."""

    def __init__(self, name: str, meta: SqlMeta, target: Target, rollups: Sequence[SqlRollup], retention_days: int) -> None:
        from pump.sinks.sql.aggregate import AGGREGATE_SPEC

        self.name = name
        self.meta = meta
        self.target = target
        self.rollups = list(rollups)
        self.granularities = ordered(self.rollups) if self.rollups else list(GRANULARITIES)
        self.ledger = Ledger(name, retention_days)
        self.backend = Backend(meta, target, AGGREGATE_SPEC)  # its pool or file; the tables are ours
        self.pool, self.db = self.backend.pool, self.backend.db
        self.postgres = self.pool is not None
        self.tables: dict[str, Table] = {}
        for table in TABLES:
            for g in self.granularities if table.granular else [None]:
                self.tables[table.table_name(g)] = table
        self._upserts = {name: upsert(t, name, self.postgres) for name, t in self.tables.items()}
        self.applied = 0
        self.skipped = 0
        self.publish_interval: float = getattr(meta, "publish_interval", 0.0)

    async def start(self) -> None:
        statements = [ddl(t, n, self.postgres) for n, t in self.tables.items()]
        if self.pool is not None:
            async with self.pool.connection() as conn:
                try:
                    await self.ledger.create_pg(conn)
                    async with conn.transaction():
                        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('pump-sql-ddl'))")
                        for stmt in statements:
                            await conn.execute(stmt.encode())
                except Exception as exc:
                    raise map_error(exc, self.target, "create the WSO2 summary tables") from None
        else:
            assert self.db is not None

            def create(conn: sqlite3.Connection) -> None:
                self.ledger.create_sqlite(conn)
                for stmt in statements:
                    conn.execute(stmt)

            await self.db.run(create, "create the WSO2 summary tables")
        await self._prune()
        log.info("SQL WSO2 summary pump ready.", extra={"pump": self.name, "database": self.target.description, "tables": len(self.tables)})

    async def close(self) -> None:
        await self.backend.close()

    async def check(self) -> None:
        await self.backend.check()

    def rows(self, records: Sequence[Any]) -> dict[str, list[tuple[Any, ...]]]:
        return summary_rows(records, self.granularities)

    async def write(self, batch: SinkBatch) -> None:
        await self.write_many([batch])

    async def write_many(self, batches: Sequence[SinkBatch]) -> dict[str, dict[int, str]]:
        """Apply batches in one transaction (``publish_interval`` flushes many); each id is
        claimed in the ledger and only the parts not applied before are counted."""
        batches = [b for b in batches if b.records]
        if not batches:
            return {}
        try:
            applied = await (self._write_pg(batches) if self.pool is not None else self._write_sqlite(batches))
        except SinkError:
            raise
        self.applied += applied
        self.skipped += len(batches) - applied
        if self.ledger.due_for_prune():
            await self._prune()
        return {}

    def _remaining(self, batch: SinkBatch, related: set[str] | None) -> list[Any]:
        if related is None:
            return []
        if not related:
            return list(batch.records)
        return [r for _, part in pending_parts(batch.id, batch.records, related) for r in part]

    async def _write_pg(self, batches: Sequence[SinkBatch]) -> int:
        assert self.pool is not None
        async with self.pool.connection() as conn:
            try:
                async with conn.transaction():
                    todo: list[Any] = []
                    applied = 0
                    for batch in batches:
                        related = await self.ledger.claim_pg(conn, batch.id)
                        applied += related is not None
                        todo.extend(self._remaining(batch, related))
                    tables = self.rows(todo)
                    async with conn.cursor() as cur:
                        for name, rows in sorted(tables.items()):
                            for part in chunks(rows, self.meta.rows_per_statement * 10):
                                await cur.executemany(self._upserts[name].encode(), part)
            except Exception as exc:
                raise map_error(exc, self.target, "upsert into the WSO2 summary tables") from None
        return applied

    async def _write_sqlite(self, batches: Sequence[SinkBatch]) -> int:
        assert self.db is not None

        def body(conn: sqlite3.Connection) -> int:
            def tx(c: sqlite3.Connection) -> int:
                todo: list[Any] = []
                applied = 0
                for batch in batches:
                    related = self.ledger.claim_sqlite(c, batch.id)
                    applied += related is not None
                    todo.extend(self._remaining(batch, related))
                for name, rows in sorted(self.rows(todo).items()):
                    c.executemany(self._upserts[name], rows)
                return applied

            return sqlite_transaction(conn, tx)

        return await self.db.run(body, "upsert into the WSO2 summary tables")

    def _expiring(self) -> list[tuple[str, int]]:
        days = {r.granularity: r.retention_days for r in self.rollups if r.retention_days}
        return [(n, days[g]) for g in days for n, t in self.tables.items() if t.granular and n == t.table_name(g)]

    async def _prune(self) -> None:
        """Forget old ledger entries and delete rows past their retention (best effort)."""
        self.ledger.mark_pruned()
        expiring = self._expiring()
        try:
            if self.pool is not None:
                async with self.pool.connection() as conn:
                    await self.ledger.prune_pg(conn)
                    for name, days in expiring:
                        await conn.execute(f'DELETE FROM {quote(name)} WHERE "AGG_TIMESTAMP" < %s'.encode(), (cutoff(days) * 1000,))
            else:
                assert self.db is not None

                def prune(conn: sqlite3.Connection) -> None:
                    self.ledger.prune_sqlite(conn)
                    for name, days in expiring:
                        conn.execute(f'DELETE FROM {quote(name)} WHERE "AGG_TIMESTAMP" < ?', (cutoff(days) * 1000,))

                await self.db.run(prune, "prune the WSO2 summary tables")
        except Exception as exc:
            log.warning(
                "Could not prune the WSO2 summary tables.", extra={"pump": self.name, "error": str(map_error(exc, self.target, "prune"))}
            )
