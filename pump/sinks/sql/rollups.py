"""``sql_aggregate``'s ``rollups:`` tables — ``tyk_aggregated_<granularity>`` — and their retention.

The rows come from :func:`pump.aggregate.rollups.rollup_rows`; they are added to the tables the
sink upserts for a batch, so they are written in the same transaction as ``tyk_aggregated`` and
the batch id's ledger entry: exactly once, like the hourly table. The tables have
``tyk_aggregated``'s columns and index; they are never sharded.

Retention (``retention_days``) is a ``DELETE`` of the rows whose bucket (``timestamp``, unix
seconds) is older than that many days, run when the ledger is pruned (at start, then hourly),
best effort: a failure is logged and tried again at the next prune.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from pump.aggregate.rollups import SqlRollup, ordered, sql_table
from pump.sinks.sql.schema import checked_table, quote


def retention(rollups: Sequence[SqlRollup]) -> list[tuple[str, int]]:
    """``(table, days)`` for each rollup with a retention, finest first."""
    days: dict[str, int] = {r.granularity: r.retention_days for r in rollups}
    return [(sql_table(g), days[g]) for g in ordered(rollups) if days[g]]


def cutoff(days: int, now: float | None = None) -> int:
    """Unix seconds before which a bucket is dropped."""
    return int((time.time() if now is None else now) - days * 86400)


async def prune_pg(conn: Any, rollups: Sequence[SqlRollup], now: float | None = None) -> int:
    """Delete expired rollup rows on PostgreSQL; returns the rows removed. A table not created
    yet is skipped (``to_regclass``)."""
    from psycopg import sql

    removed = 0
    for table, days in retention(rollups):
        cur = await conn.execute("SELECT to_regclass(%s)", (checked_table(table),))
        row = await cur.fetchone()
        if row is None or row[0] is None:
            continue
        cur = await conn.execute(sql.SQL("DELETE FROM {} WHERE timestamp < %s").format(sql.Identifier(table)), (cutoff(days, now),))
        removed += int(cur.rowcount or 0)
    return removed


def prune_sqlite(conn: sqlite3.Connection, rollups: Sequence[SqlRollup], now: float | None = None) -> int:
    """Delete expired rollup rows on SQLite; returns the rows removed."""
    removed = 0
    for table, days in retention(rollups):
        exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (checked_table(table),)).fetchone()
        if exists is None:
            continue
        removed += conn.execute(f"DELETE FROM {quote(table)} WHERE timestamp < ?", (cutoff(days, now),)).rowcount
    return removed
