"""The ledger of applied batch ids that makes aggregate upserts exactly-once (:class:`Ledger`,
:func:`pending_parts`), written in the same transaction as the upserts."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, TypeVar

from pump.sinks.base import lineage

T = TypeVar("T")

LEDGER_TABLE = "pump_applied_batches"
LEDGER_RETENTION_DAYS = 7
_PRUNE_EVERY = 3600.0


def pending_parts(batch_id: str, records: Sequence[T], applied: set[str]) -> list[tuple[str, Sequence[T]]]:
    """The parts of a batch not applied yet, following the delivery layer's deterministic split.

    Normally the answer is the whole batch. It differs only when a previous attempt split this
    batch (a record was refused), applied some halves, and the process died before the batch
    was acknowledged: the redelivered whole batch then skips exactly the halves already counted.
    """
    if any(a in applied for a in lineage(batch_id)):
        return []
    prefix = batch_id + "."
    if not any(a.startswith(prefix) for a in applied) or len(records) < 2:
        return [(batch_id, records)]
    mid = len(records) // 2
    return pending_parts(f"{batch_id}.0", records[:mid], applied) + pending_parts(f"{batch_id}.1", records[mid:], applied)


def like_prefix(text: str) -> str:
    """A LIKE pattern matching strings that start with ``text`` (``\\`` is the escape)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class Ledger:
    """Batch ids applied by one pump, written in the same transaction as the upserts.

    ``claim_*`` inserts the batch id first: if another writer holds or committed the same id, the
    insert waits for it / finds it and this writer skips the batch. Then ancestors and descendants
    are read to handle split batches (:func:`pending_parts`). Rows older than the retention are
    pruned at most once an hour.
    """

    def __init__(self, pump: str, retention_days: int = LEDGER_RETENTION_DAYS) -> None:
        self.pump = pump
        self.retention = timedelta(days=retention_days)
        self._last_prune = 0.0

    def mark_pruned(self) -> None:
        self._last_prune = time.monotonic()

    def due_for_prune(self) -> bool:
        if time.monotonic() - self._last_prune >= _PRUNE_EVERY:
            self._last_prune = time.monotonic()
            return True
        return False

    # -- PostgreSQL --------------------------------------------------------------------------

    PG_DDL = (
        f"CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} (pump TEXT NOT NULL, batch_id TEXT NOT NULL, "
        "applied_at TIMESTAMPTZ NOT NULL DEFAULT now(), PRIMARY KEY (pump, batch_id))",
        f"CREATE INDEX IF NOT EXISTS {LEDGER_TABLE}_idx_applied_at ON {LEDGER_TABLE} (applied_at)",
    )

    async def create_pg(self, conn: Any) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('pump-sql-ddl'))")
            for stmt in self.PG_DDL:
                await conn.execute(stmt)

    async def claim_pg(self, conn: Any, batch_id: str) -> set[str] | None:
        """Inside a transaction: record ``batch_id``; None if it (or an ancestor) is applied,
        else the ids of already-applied descendants."""
        cur = await conn.execute(
            f"INSERT INTO {LEDGER_TABLE} (pump, batch_id) VALUES (%s, %s) ON CONFLICT DO NOTHING RETURNING 1",
            (self.pump, batch_id),
        )
        if await cur.fetchone() is None:
            return None
        cur = await conn.execute(
            f"SELECT batch_id FROM {LEDGER_TABLE} WHERE pump = %s AND (batch_id = ANY(%s) OR batch_id LIKE %s ESCAPE '\\')",
            (self.pump, lineage(batch_id)[:-1], like_prefix(batch_id + ".")),
        )
        related = {row[0] for row in await cur.fetchall()}
        if any(a in related for a in lineage(batch_id)[:-1]):
            return None
        return related

    async def prune_pg(self, conn: Any) -> int:
        cur = await conn.execute(f"DELETE FROM {LEDGER_TABLE} WHERE pump = %s AND applied_at < now() - %s", (self.pump, self.retention))
        return int(cur.rowcount or 0)

    # -- SQLite ------------------------------------------------------------------------------

    SQLITE_DDL = (
        f"CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} (pump TEXT NOT NULL, batch_id TEXT NOT NULL, "
        "applied_at INTEGER NOT NULL, PRIMARY KEY (pump, batch_id))",
        f"CREATE INDEX IF NOT EXISTS {LEDGER_TABLE}_idx_applied_at ON {LEDGER_TABLE} (applied_at)",
    )

    def create_sqlite(self, conn: sqlite3.Connection) -> None:
        for stmt in self.SQLITE_DDL:
            conn.execute(stmt)

    def claim_sqlite(self, conn: sqlite3.Connection, batch_id: str) -> set[str] | None:
        cur = conn.execute(
            f"INSERT INTO {LEDGER_TABLE} (pump, batch_id, applied_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            (self.pump, batch_id, int(time.time())),
        )
        if cur.rowcount != 1:
            return None
        ancestors = lineage(batch_id)[:-1]
        marks = ", ".join("?" for _ in ancestors) or "NULL"
        rows = conn.execute(
            f"SELECT batch_id FROM {LEDGER_TABLE} WHERE pump = ? AND (batch_id IN ({marks}) OR batch_id LIKE ? ESCAPE '\\')",
            (self.pump, *ancestors, like_prefix(batch_id + ".")),
        )
        related = {r[0] for r in rows}
        if any(a in related for a in ancestors):
            return None
        return related

    def prune_sqlite(self, conn: sqlite3.Connection) -> int:
        cutoff = int(time.time() - self.retention.total_seconds())
        return conn.execute(f"DELETE FROM {LEDGER_TABLE} WHERE pump = ? AND applied_at < ?", (self.pump, cutoff)).rowcount
