"""Uptime ``sql`` pump: host-checker results as hourly aggregates in ``tyk_uptime_analytics``.

Configured by ``uptime_pump_config`` with ``uptime_type: sql`` (tyk-pump.md §4 "Uptime pumps").
Per organisation and hour (the hour of the org's first record in the batch, as Tyk buckets it)
there is one row per URL, one per error code (>= 400) and a total (dimension ``""``, value
``total``). The columns, ``id`` formula and merge rules are those of ``tyk_aggregated``; unlike
the analytics aggregate, 2xx codes are counted too (``code_200``…), as Tyk's uptime pump does.

Behaviour differences from Tyk, on purpose (documented in docs/sinks/sql.md):

* ``counter_request_time`` is re-averaged on conflict from the summed totals; Tyk never updates
  it after the first insert of a row, so its stored average is that of the first batch only.
* ``counter_last_time`` is the time of the last record that touched the counter (Tyk keeps the
  first record's time for URL/error rows and Go's zero time for the total).
* batches are applied exactly once through the same ledger as ``sql_aggregate``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pump.aggregate.buckets import hour_floor
from pump.aggregate.model import Counter
from pump.aggregate.sql_rows import (
    CODE_COLUMNS,
    AggregateRow,
    counter_row,
    merge_row,
    unix_seconds,
)
from pump.config.model import Config
from pump.errors import ConfigError
from pump.record import UptimeRecord
from pump.sinks.base import Sink
from pump.sinks.sql.aggregate import AggregateSink, RowsOf
from pump.sinks.sql.config import SqlMeta, target_of
from pump.sinks.sql.schema import TableSpec, shard_table
from pump.sinks.sql.statements import AGGREGATE_COLUMNS

UPTIME_TABLE = "tyk_uptime_analytics"
#: Tyk's uptime index covers (timestamp, org_id, dimension, dimension_value), in that order.
UPTIME_SPEC = TableSpec(UPTIME_TABLE, AGGREGATE_COLUMNS, (("idx_dimension", ("timestamp", "org_id", "dimension", "dimension_value")),))
#: The pump name used for the ledger and the logs (the app's worker for uptime is called this too).
UPTIME_PUMP = "uptime"

_CODE_POS = {c: i for i, c in enumerate(CODE_COLUMNS)}


@dataclass(slots=True)
class UptimeAggregate:
    """One organisation's uptime counters for one batch (Tyk's ``UptimeReportAggregate``)."""

    org_id: str
    timestamp: datetime
    url: dict[str, Counter] = field(default_factory=dict)
    errors: dict[str, Counter] = field(default_factory=dict)
    total: Counter = field(default_factory=Counter)

    def dimensions(self) -> Iterator[tuple[str, str, Counter]]:
        for key, c in self.url.items():
            yield "url", key, c
        for key, c in self.errors.items():
            yield "errors", key, c
        yield "", "total", self.total


def _count(c: Counter, rt: int, code: int, ts: datetime) -> None:
    """Add one check to a counter: a hit, its request time, success (2xx) or error (>= 400).

    Both 2xx and >= 400 codes go into ``error_map``: for uptime that map feeds the code columns."""
    c.hits += 1
    c.total_request_time += rt
    c.last_time = ts
    if code >= 400:
        c.error_total += 1
        c.error_map[str(code)] = c.error_map.get(str(code), 0) + 1
    elif 200 <= code < 300:
        c.success += 1
        c.error_map[str(code)] = c.error_map.get(str(code), 0) + 1


def aggregate_uptime(records: Sequence[UptimeRecord]) -> dict[str, UptimeAggregate]:
    """Records → one aggregate per org (Tyk's ``AggregateUptimeData``), bucket = hour of the
    org's first record. Records without an OrgID are skipped; ``ResponseCode == -1`` only makes
    sure its URL has a (zero-hit) row."""
    result: dict[str, UptimeAggregate] = {}
    for r in records:
        org = r.org_id
        if not org:
            continue
        ts = r.timestamp
        agg = result.get(org)
        if agg is None:
            agg = result[org] = UptimeAggregate(org, hour_floor(ts))
        code = r.response_code
        if code == -1:
            if r.url and r.url not in agg.url:
                agg.url[r.url] = Counter(identifier=r.url, last_time=ts)
            continue
        _count(agg.total, r.request_time, code, ts)
        if r.url:
            c = agg.url.get(r.url)
            if c is None:
                c = agg.url[r.url] = Counter(identifier=r.url)
            _count(c, r.request_time, code, ts)
        if code >= 400:
            key = str(code)
            c = agg.errors.get(key)
            if c is None:
                c = agg.errors[key] = Counter(identifier=key)
            _count(c, r.request_time, code, ts)
    for agg in result.values():
        for _, _, c in agg.dimensions():
            c.refresh_averages()
    return result


def uptime_rows(agg: UptimeAggregate) -> list[AggregateRow]:
    """Rows of one uptime aggregate, in the ``tyk_aggregated`` column layout."""
    unix = unix_seconds(agg.timestamp)
    return [counter_row(unix, agg.org_id, dimension, value, c) for dimension, value, c in agg.dimensions()]


def day_runs(records: Sequence[UptimeRecord], sharding: bool) -> Iterator[tuple[str, Sequence[UptimeRecord]]]:
    """``(table, records)`` runs: the whole batch, or runs of consecutive same-date records."""
    if not records:
        return
    if not sharding:
        yield UPTIME_TABLE, records
        return
    start = 0
    for i in range(1, len(records) + 1):
        if i == len(records) or records[i].timestamp.date() != records[start].timestamp.date():
            yield shard_table(UPTIME_TABLE, records[start].timestamp), records[start:i]
            start = i


def build_uptime_rows(records: Sequence[UptimeRecord], sharding: bool = False) -> dict[str, list[AggregateRow]]:
    """A batch → ``{table: rows}`` unique by id and sorted by id (pre-merged across runs)."""
    tables: dict[str, dict[str, AggregateRow]] = {}
    for table, run in day_runs(records, sharding):
        merged = tables.setdefault(table, {})
        for agg in aggregate_uptime(run).values():
            for row in uptime_rows(agg):
                old = merged.get(row.id)
                merged[row.id] = row if old is None else merge_row(old, row)
    return {t: [rows[k] for k in sorted(rows)] for t, rows in tables.items()}


def uptime_rows_of(meta: SqlMeta) -> RowsOf:
    def rows_of(records: Sequence[Any]) -> dict[str, list[AggregateRow]]:
        return build_uptime_rows(records, meta.table_sharding)

    return rows_of


_SQL_KEYS = (
    "type",
    "connection_string",
    "postgres",
    "mysql",
    "table_sharding",
    "log_level",
    "batch_size",
    "migrate_sharded_tables",
    "omit_index_creation",
    "migrate",
)


def uptime_meta(config: Config) -> SqlMeta:
    """The SQL settings of ``uptime_pump_config``, validated like a ``sql`` pump's meta (pydantic's
    ``ValidationError`` if they are wrong: ``pump validate`` words it, naming the keys)."""
    up = config.uptime_pump_config
    if up is None:
        raise ConfigError(["uptime_pump_config: missing"])
    return SqlMeta.model_validate({k: getattr(up, k) for k in _SQL_KEYS})


def build_uptime(config: Config) -> Sink:
    """The uptime sink for ``uptime_type: sql``."""
    meta = uptime_meta(config)
    return AggregateSink(
        UPTIME_PUMP,
        meta,
        target_of(meta),
        UPTIME_SPEC,
        uptime_rows_of(meta),
        concurrency=config.delivery.concurrency,
    )
