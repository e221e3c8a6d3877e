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
from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from pump.aggregate.rollups import SqlRollup, check_unique, ordered, rollup_rows, sql_table
from pump.aggregate.sql_rows import AggregateRow
from pump.config.model import StrictModel
from pump.sinks.publishing import PublishInterval
from pump.sinks.sql.schema import checked_table, quote

Tables = dict[str, list[AggregateRow]]


class SummaryOptions(StrictModel):
    """``sql_aggregate``'s meta keys of ours: ``mode``, ``rollups``, ``publish_interval``."""

    mode: Literal["tyk", "wso2_summary"] = Field(
        "tyk", description="ours: tyk = Tyk's tyk_aggregated; wso2_summary = WSO2 API Manager's summary tables instead"
    )
    publish_interval: PublishInterval = 0
    rollups: list[SqlRollup] = Field(
        default_factory=list,
        description="ours: also write tyk_aggregated_<granularity> (minute, hour, day, month, year), exactly once, "
        "each with an optional retention_days",
    )

    @field_validator("rollups")
    @classmethod
    def _unique_rollups(cls, v: list[SqlRollup]) -> list[SqlRollup]:
        check_unique(v)
        return v

    @model_validator(mode="after")
    def _wso2_backends(self) -> SummaryOptions:
        from pump.sinks.sql.config import infer_backend

        if self.mode == "wso2_summary":
            dsn = getattr(self, "connection_string", None)
            text = dsn.get_secret_value().strip() if dsn is not None else ""
            backend = getattr(self, "type", "") or (infer_backend(text) if text else "sqlite")
            if backend == "mysql":
                raise ValueError("mode wso2_summary writes PostgreSQL or SQLite for now; use one of them, or mode tyk on MySQL")
        return self


def rows_builder(meta: Any, extra_dimensions: Sequence[str], keep: Callable[[Tables], Tables]) -> Callable[[Sequence[Any]], Tables] | None:
    """The rollup rows of a batch for ``meta``'s aggregation settings, or None without rollups."""
    granularities = ordered(meta.rollups)
    if not granularities:
        return None
    options = {
        "track_all_paths": meta.track_all_paths,
        "ignore_tag_prefixes": tuple(meta.ignore_tag_prefix_list),
        "extra_dimensions": tuple(extra_dimensions),
    }
    return lambda records: rollup_rows(records, granularities, options, keep)


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
    if not rollups:
        return 0
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


def prune_mysql(conn: Any, rollups: Sequence[SqlRollup], now: float | None = None) -> int:
    """Delete expired rollup rows on MySQL/MariaDB; returns the rows removed."""
    from pump.sinks.sql.mysql import ident

    removed = 0
    with conn.cursor() as cur:
        for table, days in retention(rollups):
            cur.execute(
                "SELECT 1 FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = %s", (checked_table(table),)
            )
            if cur.fetchone() is None:
                continue
            removed += int(cur.execute(f"DELETE FROM {ident(table)} WHERE timestamp < %s", (cutoff(days, now),)) or 0)
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
