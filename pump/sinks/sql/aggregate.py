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

import hashlib
import logging
import sqlite3
import time
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import Field

from pump.aggregate.model import TOTAL_DIMENSION, TOTAL_VALUE
from pump.aggregate.mongo_update import DISCARD_ALIASES
from pump.aggregate.sql_rows import (
    AGGREGATE_TABLE,
    INDEX_COLUMNS,
    SQL_COLUMNS,
    AggregateRow,
    build_rows,
)
from pump.errors import RejectedRecords, SinkError
from pump.sinks.base import SinkBatch, SinkContext
from pump.sinks.sql.backend import Backend, chunks, concurrency_of
from pump.sinks.sql.config import SqlMeta, Target, target_of
from pump.sinks.sql.connect import sqlite_transaction
from pump.sinks.sql.errors import is_schema_error, map_error
from pump.sinks.sql.ledger import LEDGER_RETENTION_DAYS, Ledger, pending_parts
from pump.sinks.sql.rollups import SummaryOptions
from pump.sinks.sql.schema import TYPES, TableSpec, quote
from pump.sinks.sql.statements import AGGREGATE_COLUMNS, STAGE_TABLE, copy_rows, sqlite_params, upsert_text
from pump.sinks.sql.values import utf8

if TYPE_CHECKING:
    from pump.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

AGGREGATE_SPEC = TableSpec(AGGREGATE_TABLE, AGGREGATE_COLUMNS, (("idx_dimension", INDEX_COLUMNS),))


RowsOf = Callable[[Sequence[Any]], dict[str, list[AggregateRow]]]

#: Longest ``id`` written as Tyk writes it (hex of bucket + org + dimension + value, so keys up to
#: 1,300 bytes). PostgreSQL cannot index a longer key (B-tree entries are limited to 2,704 bytes),
#: which would make the whole batch fail — as it does in Tyk. A longer id is replaced by
#: :func:`long_row_id`, which any index holds, on both backends alike.
MAX_ID_LENGTH = 2600

#: Longest key (UTF-8 bytes of bucket seconds + org + dimension + value) a row can be stored with:
#: ``idx_dimension`` holds the same text, under the same 2,704-byte limit. A dimension row over
#: it (in practice an endpoint of a pathological path) is dropped and counted in
#: ``pump_aggregate_dimensions_dropped_total``; the record still counts in the total and in every
#: other dimension. A record whose org id leaves no room even for its total row is dead-lettered.
MAX_KEY_BYTES = 2600

#: Room the total row's key needs besides the org id: the bucket's unix seconds (12 characters at
#: most, year 1 included) and the total's dimension and value.
_TOTAL_KEY_EXTRA = 12 + len(TOTAL_DIMENSION) + len(TOTAL_VALUE)

#: Seconds between two warnings about dropped dimension rows (the metric counts every one).
DROP_LOG_INTERVAL = 60.0


def long_row_id(hex_id: str) -> str:
    """The id of a row whose Tyk id is over :data:`MAX_ID_LENGTH`: deterministic, so redeliveries
    and other pumps upsert the same row, and never equal to a Tyk id (those are bare hex)."""
    return "sha256:" + hashlib.sha256(hex_id.encode()).hexdigest()


def fit_row(row: AggregateRow) -> AggregateRow | None:
    """``row`` as it can be stored: unchanged, under :func:`long_row_id`, or None (its key is over
    :data:`MAX_KEY_BYTES`)."""
    if len(row.id) <= MAX_ID_LENGTH:
        return row
    if len(row.id) // 2 > MAX_KEY_BYTES:
        return None
    return row._replace(id=long_row_id(row.id))


def org_fits(record: Any) -> bool:
    """False when the record's org id is too long for even its total row to be stored."""
    org: str = getattr(record, "org_id", "") or ""
    room = MAX_KEY_BYTES - _TOTAL_KEY_EXTRA
    return len(org) * 4 <= room or len(org.encode("utf-8", "surrogateescape")) <= room  # 4: UTF-8's longest


def org_rejections(records: Sequence[Any]) -> dict[int, str]:
    """Batch index → dead-letter reason for the records :func:`org_fits` refuses."""
    limit = MAX_KEY_BYTES - _TOTAL_KEY_EXTRA
    return {
        i: f"org id of {len(r.org_id)} characters is too long for an aggregate row (at most {limit} bytes fit the index)"
        for i, r in enumerate(records)
        if not org_fits(r)
    }


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
        await self.backend.prepare(self.spec.prefix, pg_setup=self.ledger.create_pg, sqlite_setup=self.ledger.create_sqlite)
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
            applied, dropped = await (self._write_pg(batch) if self.pool is not None else self._write_sqlite(batch))
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
            stmt = self._statements[table] = upsert_text(table, postgres=self.pool is not None)
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
                    for table, parts in payloads.items():
                        await self._upsert_pg(conn, table, parts)
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

    async def _upsert_pg(self, conn: Any, table: str, parts: list[bytes]) -> None:
        cols = ", ".join(quote(c) for c in SQL_COLUMNS)
        async with conn.cursor() as cur:
            async with cur.copy(f"COPY {quote(STAGE_TABLE)} ({cols}) FROM STDIN") as copy:
                for data in parts:
                    await copy.write(data)
            await cur.execute(self._statement(table))
            await cur.execute(f"TRUNCATE {quote(STAGE_TABLE)}")

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

    async def _prune(self) -> None:
        """Forget ledger entries older than the retention (best effort: a failure only logs)."""
        self.ledger.mark_pruned()
        try:
            if self.pool is not None:
                async with self.pool.connection() as conn:
                    removed = await self.ledger.prune_pg(conn)
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
