"""``sql_aggregate`` with our options — ``rollups``, ``publish_interval``, ``mode: wso2_summary`` —
built here so that without them the pump is exactly Tyk's (:func:`build` then returns
``pump.sinks.sql.aggregate.build``'s sink, untouched).

:class:`SummaryAggregateSink` is the aggregate sink plus the rollup tables in its rows (same
transaction, same ledger entry: ``pump.sinks.sql.rollups``), their retention at every ledger
prune, and ``write_many`` for scheduled publishing (``pump.sinks.sql.publish``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pump.sinks.base import SinkBatch, SinkContext
from pump.sinks.sql import rollups as rollup_tables
from pump.sinks.sql.aggregate import AGGREGATE_SPEC, AggregateSink, Meta, RowsOf, aggregate_rows_of, without_dimensions
from pump.sinks.sql.aggregate import build as build_aggregate
from pump.sinks.sql.config import target_of
from pump.sinks.sql.errors import map_error
from pump.sinks.sql.wso2 import Wso2SummarySink

log = logging.getLogger(__name__)


def summary_rows_of(meta: Meta, extra_dimensions: Sequence[str] = ()) -> RowsOf:
    """Tyk's rows (``aggregate_rows_of``) plus the rollup tables of ``meta.rollups``."""
    tyk = aggregate_rows_of(meta, extra_dimensions)
    rollups = rollup_tables.rows_builder(meta, extra_dimensions, lambda t: without_dimensions(t, meta.ignore_aggregations))
    if rollups is None:
        return tyk

    def rows_of(records: Sequence[Any]) -> dict[str, Any]:
        tables = tyk(records)
        tables.update(rollups(records))
        return tables

    return rows_of


class SummaryAggregateSink(AggregateSink):
    """The aggregate sink with rollup retention and ``write_many`` (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rollups = list(getattr(self.meta, "rollups", ()))
        self.publish_interval: float = getattr(self.meta, "publish_interval", 0.0)

    async def write_many(self, batches: Sequence[SinkBatch]) -> dict[str, dict[int, str]]:
        """Several batches in one exactly-once transaction: :func:`pump.sinks.sql.publish.write_many`."""
        from pump.sinks.sql.publish import write_many

        return await write_many(self, batches)

    async def _prune(self) -> None:
        await super()._prune()
        if not rollup_tables.retention(self.rollups):
            return
        try:
            if self.pool is not None:
                async with self.pool.connection() as conn:
                    removed = await rollup_tables.prune_pg(conn, self.rollups)
            elif self.backend.my is not None:
                removed = await self.backend.my.run(lambda c: rollup_tables.prune_mysql(c, self.rollups), "prune the rollups")
            else:
                assert self.db is not None
                removed = await self.db.run(lambda c: rollup_tables.prune_sqlite(c, self.rollups), "prune the rollups")
        except Exception as exc:
            error = str(map_error(exc, self.target, "delete old rollup rows"))
            log.warning("Could not delete rollup rows past their retention.", extra={"pump": self.name, "error": error})
            return
        if removed:
            log.info("Deleted rollup rows past their retention.", extra={"pump": self.name, "removed": removed})


def sink_for(name: str, meta: Meta, extra_dimensions: Sequence[str] = (), concurrency: int = 1) -> SummaryAggregateSink:
    """A :class:`SummaryAggregateSink` for ``meta`` (tests and tools build sinks directly)."""
    rows_of = summary_rows_of(meta, extra_dimensions)
    return SummaryAggregateSink(name, meta, target_of(meta), AGGREGATE_SPEC, rows_of, meta.ledger_retention_days, concurrency)


def build(ctx: SinkContext, meta: Meta) -> AggregateSink | Wso2SummarySink:
    if meta.mode == "wso2_summary":
        return Wso2SummarySink(ctx.name, meta, target_of(meta), meta.rollups, meta.ledger_retention_days)
    if not meta.rollups and not meta.publish_interval:
        return build_aggregate(ctx, meta)  # Tyk's sql_aggregate, unchanged
    return build_aggregate(ctx, meta, SummaryAggregateSink, summary_rows_of(meta, tuple(ctx.pump.extra_dimensions)))
