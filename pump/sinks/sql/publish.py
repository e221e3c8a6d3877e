"""Many batches in one exactly-once write of ``tyk_aggregated`` (and its rollups), for
``publish_interval`` (``pump.delivery.publish``).

One transaction claims every batch id in the ledger and upserts the merged rows of the batches
not applied before (for a batch partly applied before, only its parts that were not). Rows are
built per batch — each keeps Tyk's per-batch bucketing, so the result equals writing the batches
one by one — and merged by id with :func:`~pump.aggregate.sql_rows.merge_row`, the reference of
the upsert's ``ON CONFLICT`` rules: one statement never touches a row twice.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pump.aggregate.sql_rows import AggregateRow, merge_row
from pump.errors import RejectedRecords, SinkError
from pump.sinks.base import SinkBatch
from pump.sinks.sql.backend import chunks
from pump.sinks.sql.connect import sqlite_transaction
from pump.sinks.sql.errors import is_schema_error, map_error
from pump.sinks.sql.ledger import pending_parts
from pump.sinks.sql.statements import sqlite_params

if TYPE_CHECKING:
    from pump.sinks.sql.aggregate import AggregateSink

Tables = dict[str, list[AggregateRow]]


async def write_many(sink: AggregateSink, batches: Sequence[SinkBatch]) -> dict[str, dict[int, str]]:
    """``AggregateSink.write_many``: the batches in one transaction; returns the records refused
    per batch id (org ids too long to store), which the caller dead-letters; the rest is written."""
    from pump.sinks.sql.aggregate import log
    from pump.sinks.sql.limits import org_rejections

    batches = [b for b in batches if b.records]
    if not batches:
        return {}
    if sink.backend.my is not None:  # MySQL/MariaDB: one transaction per batch, each ledgered
        return await _one_by_one(sink, batches)
    try:
        many = write_many_pg if sink.pool is not None else write_many_sqlite
        applied, dropped = await many(sink, batches)
    except SinkError as exc:
        if is_schema_error(exc):
            sink.schema.forget()
        raise
    sink.applied += len(applied)
    sink.skipped += len(batches) - len(applied)
    if dropped:
        sink._report_dropped(dropped)
    if len(applied) < len(batches):
        log.info("Batches already applied; not counted again.", extra={"pump": sink.name, "batches": len(batches) - len(applied)})
    if sink.ledger.due_for_prune():
        await sink._prune()
    return {b.id: r for b in batches if (r := org_rejections(b.records))}


async def _one_by_one(sink: AggregateSink, batches: Sequence[SinkBatch]) -> dict[str, dict[int, str]]:
    """Each batch in its own exactly-once transaction: a flush cut short leaves every batch
    either applied (in the ledger) or not at all."""
    refused: dict[str, dict[int, str]] = {}
    for batch in batches:
        try:
            await sink.write(batch)
        except RejectedRecords as exc:
            refused[batch.id] = dict(exc.rejected)
    return refused


def merged_tables(sink: AggregateSink, parts: Sequence[Sequence[Any]]) -> tuple[Tables, list[AggregateRow]]:
    """The rows of several batches (``parts``), merged by id per table, sorted by id."""
    merged: dict[str, dict[str, AggregateRow]] = {}
    dropped: list[AggregateRow] = []
    for records in parts:
        if not records:
            continue
        tables, lost = sink._tables(records)
        dropped.extend(lost)
        for table, rows in tables.items():
            into = merged.setdefault(table, {})
            for row in rows:
                old = into.get(row.id)
                into[row.id] = row if old is None else merge_row(old, row)
    return {t: [rows[k] for k in sorted(rows)] for t, rows in merged.items()}, dropped


def remaining(batch: SinkBatch, related: set[str] | None) -> Sequence[Any]:
    """The records of ``batch`` still to count after its ledger claim (None = all applied)."""
    if related is None:
        return []
    if not related:
        return batch.records
    return [r for _, part in pending_parts(batch.id, batch.records, related) for r in part]


async def write_many_pg(sink: AggregateSink, batches: Sequence[SinkBatch]) -> tuple[list[str], list[AggregateRow]]:
    """PostgreSQL: ledger claims, then COPY + upsert per table; returns the ids applied now."""
    assert sink.pool is not None
    tables, dropped = merged_tables(sink, [b.records for b in batches])
    for table in tables:
        await sink.schema.ensure_pg(sink.pool, table)
    doing = f"upsert into {', '.join(sorted(tables)) or sink.spec.prefix}"
    async with sink.pool.connection() as conn:
        try:
            async with conn.transaction():
                claims = [(b, await sink.ledger.claim_pg(conn, b.id)) for b in batches]
                applied = [b.id for b, related in claims if related is not None]
                if any(related != set() for _, related in claims):  # some applied before, wholly or in part
                    tables, dropped = merged_tables(sink, [remaining(b, related) for b, related in claims])
                    for table in tables:
                        await sink.schema.ensure_pg(sink.pool, table)
                await sink._ensure_stage(conn)
                await sink._upsert_pg(conn, sink._payloads(tables))
        except Exception as exc:
            raise map_error(exc, sink.target, doing) from None
    return applied, dropped


async def write_many_sqlite(sink: AggregateSink, batches: Sequence[SinkBatch]) -> tuple[list[str], list[AggregateRow]]:
    """SQLite: the same in one ``BEGIN IMMEDIATE`` transaction."""
    assert sink.db is not None
    tables, dropped = merged_tables(sink, [b.records for b in batches])
    size = sink.meta.rows_per_statement

    def body(conn: sqlite3.Connection) -> tuple[list[str], list[AggregateRow]]:
        def tx(c: sqlite3.Connection) -> tuple[list[str], list[AggregateRow]]:
            claims = [(b, sink.ledger.claim_sqlite(c, b.id)) for b in batches]
            todo, todo_dropped = tables, dropped
            if any(related != set() for _, related in claims):
                todo, todo_dropped = merged_tables(sink, [remaining(b, related) for b, related in claims])
            for table in todo:
                sink.schema.ensure_sqlite(c, table)
            for table, rows in sorted(todo.items()):
                stmt = sink._statement(table)
                for part in chunks(rows, size):
                    c.executemany(stmt, [sqlite_params(r) for r in part])
            return [b.id for b, related in claims if related is not None], todo_dropped

        return sqlite_transaction(conn, tx)

    return await sink.db.run(body, f"upsert into {', '.join(sorted(tables)) or sink.spec.prefix}")
