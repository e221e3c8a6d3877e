"""``sql_aggregate``: Tyk's SQL aggregate pump — hourly (or per-minute) counters per dimension.

Rows, ids and merge rules come from the pure engine (``pump.aggregate.sql_rows``, tyk-pump.md
§3.5); this module renders the rules as ``INSERT … ON CONFLICT (id) DO UPDATE`` for PostgreSQL
or SQLite and writes them exactly once:

* the batch id is inserted into the ledger table ``pump_applied_batches`` in the same
  transaction as the upserts — a redelivered batch finds its id and changes nothing;
* a batch the delivery layer split (``<id>.0``/``<id>.1``) counts as applied when any ancestor
  id is in the ledger, and a redelivered whole batch skips the halves already applied;
* rows are written per table in id order, so concurrent writers lock rows in the same order.

:class:`AggregateSink` is shared with the uptime SQL pump (``pump.sinks.sql.uptime``), which writes the same
row shape into ``tyk_uptime_analytics``.
"""

from __future__ import annotations

import logging
import sqlite3
import time
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import Field

from pump.aggregate.mongo_update import DISCARD_ALIASES
from pump.aggregate.sql_rows import (
    AGGREGATE_TABLE,
    INDEX_COLUMNS,
    AggregateRow,
    build_rows,
)
from pump.errors import RejectedRecords, SinkError
from pump.sinks.base import SinkBatch, SinkContext
from pump.sinks.sql import mysql
from pump.sinks.sql.backend import Backend, chunks, concurrency_of
from pump.sinks.sql.config import SqlMeta, Target, target_of
from pump.sinks.sql.connect import sqlite_transaction
from pump.sinks.sql.errors import is_schema_error, map_error
from pump.sinks.sql.ledger import LEDGER_RETENTION_DAYS, Ledger, pending_parts
from pump.sinks.sql.limits import MAX_ID_LENGTH, MAX_KEY_BYTES, fit_row, long_row_id, org_fits, org_rejections
from pump.sinks.sql.rollups import SummaryOptions
from pump.sinks.sql.schema import TYPES, TableSpec, quote
from pump.sinks.sql.statements import AGGREGATE_COLUMNS, CONSTANT_COLUMNS, STAGE_TABLE, copy_rows, sqlite_params, upsert_text
from pump.sinks.sql.values import utf8

if TYPE_CHECKING:
    from pump.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

AGGREGATE_SPEC = TableSpec(AGGREGATE_TABLE, AGGREGATE_COLUMNS, (("idx_dimension", INDEX_COLUMNS),))


RowsOf = Callable[[Sequence[Any]], dict[str, list[AggregateRow]]]

#: Seconds between two warnings about dropped dimension rows (the metric counts every one).
DROP_LOG_INTERVAL = 60.0


class Meta(SqlMeta, SummaryOptions):
    """Tyk's ``SQLAggregatePumpConf``: ``SQLConf`` plus the aggregation settings, plus ours
    (``mode``, ``rollups``, ``publish_interval``: ``pump.sinks.sql.summary``)."""

    track_all_paths: bool = Field(False, description="aggregate every path, not only tracked endpoints")
    ignore_tag_prefix_list: list[str] = Field(default_factory=list, description="tags starting with these are not aggregated")
    store_analytics_per_minute: bool = Field(False, description="one row per minute instead of per hour")
    ignore_aggregations: list[str] = Field(default_factory=list, description="dimensions not written, e.g. [apikeys, tags]")
    ledger_retention_days: int = Field(LEDGER_RETENTION_DAYS, ge=1, description="days applied batch ids are kept (ours)")

    def unknown_aggregations(self) -> list[str]:
        """Names in ``ignore_aggregations`` that are no dimension (Tyk warns and goes on; so do we)."""
        return [n for n in self.ignore_aggregations if n not in DISCARD_ALIASES]


def without_dimensions(tables: dict[str, list[AggregateRow]], ignored: Sequence[str]) -> dict[str, list[AggregateRow]]:
    """``ignore_aggregations``: drop the rows of the named dimensions (the total always stays)."""
    dims = {DISCARD_ALIASES[n] for n in ignored if n in DISCARD_ALIASES}
    if not dims:
        return tables
    return {t: [r for r in rows if r.dimension not in dims] for t, rows in tables.items()}


# --------------------------------------------------------------------------- the sink


class AggregateSink:
    """Upserts aggregate rows, exactly once per batch id (see the module docstring)."""

    def __init__(
        self,
        name: str,
        meta: SqlMeta,
        target: Target,
        spec: TableSpec,
        rows_of: RowsOf,
        retention_days: int = LEDGER_RETENTION_DAYS,
        concurrency: int = 1,
    ) -> None:
        self.name = name
        self.meta = meta
        self.target = target
        self.spec = spec
        self.rows_of = rows_of
        #: The columns a row carries, in order (the spec's, less the constants every insert writes).
        self.columns = tuple(n for n, _ in spec.columns if n not in dict(CONSTANT_COLUMNS))
        self.ledger = Ledger(name, retention_days)
        self.backend = Backend(meta, target, spec, concurrency)
        self.schema, self.pool, self.db = self.backend.schema, self.backend.pool, self.backend.db
        self._statements: dict[str, str] = {}
        self._staged: weakref.WeakSet[Any] = weakref.WeakSet()
        self.applied = 0
        self.skipped = 0
        #: Set by :func:`build` (the daemon's metrics); None in tests that build sinks directly.
        self.metrics: Metrics | None = None
        self._last_drop_log = -DROP_LOG_INTERVAL
        self._dropped_unlogged = 0
        self._dropped_dimensions: set[str] = set()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        await self.backend.prepare(
            self.spec.prefix, pg_setup=self.ledger.create_pg, sqlite_setup=self.ledger.create_sqlite, mysql_setup=mysql.create_ledger
        )
        await self._prune()
        log.info(
            "SQL aggregate pump ready.",
            extra={"pump": self.name, "database": self.target.description, "table": self.spec.prefix, "sharding": self.meta.table_sharding},
        )

    async def close(self) -> None:
        await self.backend.close()

    async def check(self) -> None:
        await self.backend.check()

    # -- writing -----------------------------------------------------------------------------

    async def write(self, batch: SinkBatch) -> None:
        if not batch.records:
            return
        try:
            if self.pool is not None:
                applied, dropped = await self._write_pg(batch)
            elif self.backend.my is not None:
                applied, dropped = await self._write_mysql(batch)
            else:
                applied, dropped = await self._write_sqlite(batch)
        except SinkError as exc:
            if is_schema_error(exc):
                self.schema.forget()
            raise
        if applied:
            self.applied += 1
            if dropped:
                self._report_dropped(dropped)
        else:
            self.skipped += 1
            log.info("Batch already applied; nothing written.", extra={"pump": self.name, "batch_id": batch.id})
        if self.ledger.due_for_prune():
            await self._prune()
        rejected = org_rejections(batch.records)
        if rejected:  # the rest is written; these can never be
            raise RejectedRecords(rejected)

    def _tables(self, records: Sequence[Any]) -> tuple[dict[str, list[AggregateRow]], list[AggregateRow]]:
        """Rows to upsert per table, and the dimension rows that cannot be stored. Records whose
        org id cannot be stored at all are left out here and dead-lettered by :meth:`write`."""
        if not all(org_fits(r) for r in records):
            records = [r for r in records if org_fits(r)]
        tables: dict[str, list[AggregateRow]] = {}
        dropped: list[AggregateRow] = []
        for table, rows in self.rows_of(records).items():
            kept = [f for f in map(fit_row, rows) if f is not None]
            if len(kept) < len(rows):
                dropped.extend(r for r in rows if fit_row(r) is None)
            if kept:
                tables[table] = kept
        return tables, dropped

    def _report_dropped(self, dropped: list[AggregateRow]) -> None:
        """Count dimension rows that could not be stored; warn at most every minute."""
        if self.metrics is not None:
            self.metrics.aggregate_dimensions_dropped.labels(self.name, "key_too_long").inc(len(dropped))
        self._dropped_unlogged += len(dropped)
        self._dropped_dimensions.update(r.dimension for r in dropped)
        now = time.monotonic()
        if now - self._last_drop_log < DROP_LOG_INTERVAL:
            return
        log.warning(
            "Aggregate dimension rows dropped: their key is too long to index (the records still count in the total).",
            extra={
                "pump": self.name,
                "rows": self._dropped_unlogged,
                "dimensions": ",".join(sorted(self._dropped_dimensions)),
                "longest_value_chars": max(len(r.dimension_value) for r in dropped),
                "max_key_bytes": MAX_KEY_BYTES,
            },
        )
        self._last_drop_log = now
        self._dropped_unlogged = 0
        self._dropped_dimensions.clear()

    def _statement(self, table: str) -> Any:
        stmt = self._statements.get(table)
        if stmt is None:
            stmt = self._statements[table] = upsert_text(table, postgres=self.pool is not None, columns=self.columns)
        return stmt

    async def _write_pg(self, batch: SinkBatch) -> tuple[bool, list[AggregateRow]]:
        """Ledger claim, then per table: COPY the rows into the staging table and upsert them
        from there with one ``INSERT … SELECT … ON CONFLICT`` — all in one transaction.

        One set-based statement per table instead of a statement per row: the per-row cost of
        ``executemany`` (parameter adaptation, protocol round trips) was most of the batch."""
        import psycopg

        assert self.pool is not None
        tables, dropped = self._tables(batch.records)
        for table in tables:
            await self.schema.ensure_pg(self.pool, table)
        payloads = self._payloads(tables)
        applied = False
        doing = f"upsert into {', '.join(sorted(tables)) or self.spec.prefix}"
        async with self.pool.connection() as conn:
            try:
                async with conn.transaction():
                    related = await self.ledger.claim_pg(conn, batch.id)
                    if related is None:
                        raise psycopg.Rollback()
                    if related:
                        remaining, dropped = await self._remaining_pg(batch, related)
                        payloads = self._payloads(remaining)
                    await self._ensure_stage(conn)
                    await self._upsert_pg(conn, payloads)
                    applied = True
            except Exception as exc:
                raise map_error(exc, self.target, doing) from None
        return applied, dropped

    def _payloads(self, tables: dict[str, list[AggregateRow]]) -> dict[str, list[bytes]]:
        size = self.meta.rows_per_statement * 10
        return {table: [utf8(copy_rows(part)) for part in chunks(rows, size)] for table, rows in sorted(tables.items())}

    async def _ensure_stage(self, conn: Any) -> None:
        """A temporary table per connection with the aggregate columns, emptied at commit."""
        if conn in self._staged:
            return
        cols = ", ".join(f"{quote(name)} {TYPES[kind][0]}" for name, kind in self.spec.columns)
        await conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {quote(STAGE_TABLE)} ({cols}) ON COMMIT DELETE ROWS")
        self._staged.add(conn)

    async def _upsert_pg(self, conn: Any, payloads: dict[str, list[bytes]]) -> None:
        """Per table: COPY into the staging table, upsert from it. The staging table is emptied
        between tables only: the commit empties it after the last (``ON COMMIT DELETE ROWS``),
        so the usual one-table batch saves a statement and a new file for the truncated table."""
        cols = ", ".join(quote(c) for c in self.columns)
        async with conn.cursor() as cur:
            for i, (table, parts) in enumerate(payloads.items()):
                if i:
                    await cur.execute(f"TRUNCATE {quote(STAGE_TABLE)}")
                async with cur.copy(f"COPY {quote(STAGE_TABLE)} ({cols}) FROM STDIN") as copy:
                    for data in parts:
                        await copy.write(data)
                await cur.execute(self._statement(table))

    async def _remaining_pg(self, batch: SinkBatch, related: set[str]) -> tuple[dict[str, list[AggregateRow]], list[AggregateRow]]:
        assert self.pool is not None
        remaining = [r for _, part in pending_parts(batch.id, batch.records, related) for r in part]
        log.info(
            "Batch partly applied before; writing only the parts not yet applied.",
            extra={"pump": self.name, "batch_id": batch.id, "records": len(remaining), "of": len(batch.records)},
        )
        return self._tables(remaining)

    async def _write_sqlite(self, batch: SinkBatch) -> tuple[bool, list[AggregateRow]]:
        assert self.db is not None
        tables, dropped = self._tables(batch.records)
        size = self.meta.rows_per_statement

        def body(conn: sqlite3.Connection) -> tuple[bool, list[AggregateRow]]:
            def tx(c: sqlite3.Connection) -> tuple[bool, list[AggregateRow]]:
                related = self.ledger.claim_sqlite(c, batch.id)
                if related is None:
                    raise _AlreadyApplied
                todo, todo_dropped = tables, dropped
                if related:
                    remaining = [r for _, part in pending_parts(batch.id, batch.records, related) for r in part]
                    todo, todo_dropped = self._tables(remaining)
                for table in todo:
                    self.schema.ensure_sqlite(c, table)
                for table, rows in sorted(todo.items()):
                    stmt = self._statement(table)
                    for part in chunks(rows, size):
                        c.executemany(stmt, [sqlite_params(r) for r in part])
                return True, todo_dropped

            try:
                return sqlite_transaction(conn, tx)
            except _AlreadyApplied:
                return False, []

        return await self.db.run(body, f"upsert into {', '.join(sorted(tables)) or self.spec.prefix}")

    async def _write_mysql(self, batch: SinkBatch) -> tuple[bool, list[AggregateRow]]:
        """Ledger claim and upserts in one transaction (see ``pump.sinks.sql.mysql``)."""
        my = self.backend.my
        assert my is not None
        tables, dropped = self._tables(batch.records)
        size = self.meta.rows_per_statement

        def tx(conn: Any) -> tuple[bool, list[AggregateRow]]:
            with conn.cursor() as cur:
                related = mysql.claim(cur, self.ledger.pump, batch.id)
                if related is None:
                    raise _AlreadyApplied
                todo, todo_dropped = tables, dropped
                if related:
                    remaining = [r for _, part in pending_parts(batch.id, batch.records, related) for r in part]
                    todo, todo_dropped = self._tables(remaining)
                for table, rows in sorted(todo.items()):
                    mysql.upsert_rows(cur, table, rows, size, self.columns)
            return True, todo_dropped

        def body(conn: Any) -> tuple[bool, list[AggregateRow]]:
            for table in tables:
                self.backend.ensure_mysql(conn, table)
            try:
                return mysql.transaction(conn, tx)
            except _AlreadyApplied:
                return False, []

        return await my.run(body, f"upsert into {', '.join(sorted(tables)) or self.spec.prefix}")

    async def _prune(self) -> None:
        """Forget ledger entries older than the retention (best effort: a failure only logs)."""
        self.ledger.mark_pruned()
        try:
            if self.pool is not None:
                async with self.pool.connection() as conn:
                    removed = await self.ledger.prune_pg(conn)
            elif self.backend.my is not None:
                seconds = self.ledger.retention.total_seconds()
                removed = await self.backend.my.run(lambda conn: mysql.prune(conn, self.ledger.pump, seconds), "prune the ledger")
            else:
                assert self.db is not None
                removed = await self.db.run(self.ledger.prune_sqlite, "prune the ledger")
        except Exception as exc:
            log.warning(
                "Could not prune the ledger of applied batches.",
                extra={"pump": self.name, "error": str(map_error(exc, self.target, "prune the ledger"))},
            )
            return
        if removed:
            log.info("Pruned the ledger of applied batches.", extra={"pump": self.name, "removed": removed})


class _AlreadyApplied(Exception):
    """Internal: roll the SQLite transaction back because the batch id is in the ledger."""


def aggregate_rows_of(meta: Meta, extra_dimensions: Sequence[str] = ()) -> RowsOf:
    """The row builder for ``meta``'s settings (tyk-pump.md §3.1, §3.5) and the pump's
    ``extra_dimensions`` (``pump.aggregate.extra``)."""

    def rows_of(records: Sequence[Any]) -> dict[str, list[AggregateRow]]:
        tables = build_rows(
            records,
            per_minute=meta.store_analytics_per_minute,
            sharding=meta.table_sharding,
            track_all_paths=meta.track_all_paths,
            ignore_tag_prefixes=tuple(meta.ignore_tag_prefix_list),
            extra_dimensions=extra_dimensions,
        )
        return without_dimensions(tables, meta.ignore_aggregations)

    return rows_of


def build(ctx: SinkContext, meta: Meta, kind: type[AggregateSink] | None = None, rows_of: RowsOf | None = None) -> AggregateSink:
    """The sink; ``pump.sinks.sql.summary`` passes its subclass and row builder for our options."""
    unknown = meta.unknown_aggregations()
    if unknown:
        known = ", ".join(sorted(set(DISCARD_ALIASES.values())))
        log.warning(
            "Unknown names in ignore_aggregations are ignored.",
            extra={"pump": ctx.name, "unknown": ",".join(unknown), "expected_some_of": known},
        )
    sink = (kind or AggregateSink)(
        ctx.name,
        meta,
        target_of(meta),
        AGGREGATE_SPEC,
        rows_of or aggregate_rows_of(meta, tuple(ctx.pump.extra_dimensions)),
        meta.ledger_retention_days,
        concurrency_of(ctx.config, ctx.name),
    )
    sink.metrics = ctx.extra.get("metrics")
    return sink


# Re-exported: the key limits live in pump.sinks.sql.limits.
__all__ = ["MAX_ID_LENGTH", "MAX_KEY_BYTES", "AggregateSink", "Meta", "build", "fit_row", "long_row_id", "org_fits", "org_rejections"]
