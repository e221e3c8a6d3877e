"""Aggregates → rows of ``tyk_aggregated[_YYYYMMDD]`` and the upsert rules as data (§3.5).

The SQL aggregate sink inserts one row per dimension value and merges it into an existing row with
``INSERT … ON CONFLICT (id) DO UPDATE``. This module produces the rows and describes, per column,
how the stored and incoming values combine (:data:`ON_CONFLICT`), so the sink renders the SQL for
its dialect from constants only (column and table names here never contain user data; values
always travel as bind parameters). :func:`merge_row` is the same rules executed in Python: it is
the executable specification the sink's SQL must match, and it lets :func:`build_rows` collapse
duplicate ids within one batch so a single statement never touches a row twice (PostgreSQL
rejects that).

Rows come out sorted by id per table: a redelivered batch yields identical statements, and
concurrent writers lock rows in the same order, which avoids deadlocks between pump instances.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from pump.aggregate.buckets import sql_bucketer
from pump.aggregate.engine import aggregate_records
from pump.aggregate.model import Counter, OrgAggregate, iter_dimensions
from pump.gotime import shard_suffix
from pump.record import Record

AGGREGATE_TABLE = "tyk_aggregated"
#: Columns of the ``<table>_idx_dimension`` index, in index order.
INDEX_COLUMNS: tuple[str, ...] = ("dimension", "timestamp", "org_id", "dimension_value")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


class AggregateRow(NamedTuple):
    """One row of ``tyk_aggregated``; field order = column order (:data:`SQL_COLUMNS`)."""

    id: str
    org_id: str
    dimension: str
    dimension_value: str
    timestamp: int
    counter_hits: int
    counter_success: int
    counter_error: int
    counter_request_time: float
    counter_total_request_time: float
    counter_identifier: str
    counter_human_identifier: str
    counter_last_time: datetime
    counter_open_connections: int
    counter_closed_connections: int
    counter_bytes_in: int
    counter_bytes_out: int
    counter_max_upstream_latency: int
    counter_min_upstream_latency: int
    counter_total_upstream_latency: int
    counter_upstream_latency: float
    counter_max_latency: int
    counter_min_latency: int
    counter_total_latency: int
    counter_latency: float
    code_1x: int
    code_200: int
    code_201: int
    code_2x: int
    code_301: int
    code_302: int
    code_303: int
    code_304: int
    code_3x: int
    code_400: int
    code_401: int
    code_403: int
    code_404: int
    code_429: int
    code_4x: int
    code_500: int
    code_501: int
    code_502: int
    code_503: int
    code_504: int
    code_5x: int


#: Every column, in row order.
SQL_COLUMNS: tuple[str, ...] = AggregateRow._fields
#: The status-code columns (Tyk's ``Code`` struct), in row order.
CODE_COLUMNS: tuple[str, ...] = tuple(c for c in SQL_COLUMNS if c.startswith("code_"))
_CODE_SET = frozenset(CODE_COLUMNS)
_CODE_POS = {column: i for i, column in enumerate(CODE_COLUMNS)}

#: SQL types, for sinks that create the table (PostgreSQL spelling; SQLite accepts them too).
COLUMN_TYPES: dict[str, str] = {
    **{c: "BIGINT" for c in SQL_COLUMNS},
    "id": "TEXT",
    "org_id": "TEXT",
    "dimension": "TEXT",
    "dimension_value": "TEXT",
    # Go float64 → gorm's ``decimal`` on PostgreSQL, as Tyk creates them.
    "counter_request_time": "NUMERIC",
    "counter_total_request_time": "NUMERIC",
    "counter_upstream_latency": "NUMERIC",
    "counter_latency": "NUMERIC",
    "counter_identifier": "TEXT",
    "counter_human_identifier": "TEXT",
    "counter_last_time": "TIMESTAMPTZ",
}


class Merge(enum.StrEnum):
    """How a column combines the stored row with the incoming one on ``ON CONFLICT (id)``."""

    KEEP = "keep"  # not assigned: the stored value stays (id, dimension, identifiers, …)
    SUM = "sum"  # stored + incoming
    AVG = "avg"  # (stored.total + incoming.total) / (stored.hits + incoming.hits); 0 if no hits
    MAX = "max"  # larger of the two
    MIN = "min"  # smaller of the two (plain min: errors are not special-cased in SQL)
    REPLACE = "replace"  # incoming value


@dataclass(frozen=True, slots=True)
class ColumnRule:
    """The merge rule of one column; ``AVG`` rules name the total and hits columns they divide."""

    column: str
    merge: Merge
    total_column: str | None = None
    hits_column: str | None = None


def _rule(column: str) -> ColumnRule:
    if column.startswith("code_"):
        return ColumnRule(column, Merge.SUM)
    if column in _SUMMED:
        return ColumnRule(column, Merge.SUM)
    if column in _AVERAGED:
        return ColumnRule(column, Merge.AVG, _AVERAGED[column], "counter_hits")
    if column in ("counter_max_latency", "counter_max_upstream_latency"):
        return ColumnRule(column, Merge.MAX)
    if column in ("counter_min_latency", "counter_min_upstream_latency"):
        return ColumnRule(column, Merge.MIN)
    if column == "counter_last_time":
        return ColumnRule(column, Merge.REPLACE)  # Tyk: the incoming batch's (first-record) time
    return ColumnRule(column, Merge.KEEP)


# Tyk sums connection/byte counters in SQL (where Mongo $set-s them); §3.5 keeps that.
_SUMMED = frozenset(
    {
        "counter_hits",
        "counter_error",
        "counter_success",
        "counter_open_connections",
        "counter_closed_connections",
        "counter_bytes_in",
        "counter_bytes_out",
        "counter_total_request_time",
        "counter_total_latency",
        "counter_total_upstream_latency",
    }
)
_AVERAGED = {
    "counter_request_time": "counter_total_request_time",
    "counter_latency": "counter_total_latency",
    "counter_upstream_latency": "counter_total_upstream_latency",
}

#: One rule per column, in :data:`SQL_COLUMNS` order. All expressions read the *stored* row's
#: pre-update values (as SQL ``SET`` does), never a value assigned earlier in the same statement.
ON_CONFLICT: tuple[ColumnRule, ...] = tuple(_rule(c) for c in SQL_COLUMNS)


def update_rules() -> tuple[ColumnRule, ...]:
    """The rules that become ``DO UPDATE SET`` assignments (everything except ``KEEP``)."""
    return tuple(r for r in ON_CONFLICT if r.merge is not Merge.KEEP)


def table_name(day: datetime | None = None) -> str:
    """``tyk_aggregated``, or ``tyk_aggregated_YYYYMMDD`` for ``day`` when sharding."""
    return AGGREGATE_TABLE if day is None else f"{AGGREGATE_TABLE}_{shard_suffix(day)}"


def index_name(table: str) -> str:
    """Name of the ``(dimension, timestamp, org_id, dimension_value)`` index of ``table``."""
    return f"{table}_idx_dimension"


def status_code_columns(error_map: Mapping[str, int]) -> dict[str, int]:
    """Tyk's ``ProcessStatusCodes``: counts per ``code_*`` column.

    A code with its own column goes there only (404 → ``code_404``, not ``code_4x``); otherwise it
    is added to ``code_<first digit>x`` if that exists (481 → ``code_4x``); else dropped (666).
    """
    out: dict[str, int] = {}
    for code, count in error_map.items():
        column = f"code_{code}"
        if column not in _CODE_SET:
            column = f"code_{code[:1]}x"
            if column not in _CODE_SET:
                continue
        out[column] = out.get(column, 0) + count
    return out


def unix_seconds(ts: datetime) -> int:
    """Whole unix seconds of an aware datetime (exact, no float rounding)."""
    return (ts - _EPOCH) // _SECOND


def row_id(bucket_unix: int, org_id: str, dimension: str, value: str) -> str:
    """Primary key: lower-case hex of ``"<unix seconds>" + org + dimension + value``."""
    return f"{bucket_unix}{org_id}{dimension}{value}".encode("utf-8", "surrogateescape").hex()


def aggregate_rows(agg: OrgAggregate) -> list[AggregateRow]:
    """One row per dimension value of one org aggregate, total last (unsorted)."""
    unix = unix_seconds(agg.timestamp)
    org = agg.org_id
    # The id's hex is bytewise, so the bucket+org part is encoded once per aggregate, not per row.
    head = _hex(f"{unix}{org}")
    return [_row(head + _hex(f"{dimension}{value}"), unix, org, dimension, value, c) for dimension, value, c in iter_dimensions(agg)]


def _hex(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").hex()


#: The code columns of a counter without errors (most of them).
_NO_CODES: tuple[int, ...] = (0,) * len(CODE_COLUMNS)
_new_row = tuple.__new__


def _codes(error_map: Mapping[str, int]) -> tuple[int, ...] | list[int]:
    if not error_map:
        return _NO_CODES
    codes = [0] * len(CODE_COLUMNS)
    for column, count in status_code_columns(error_map).items():
        codes[_CODE_POS[column]] = count
    return codes


def counter_row(unix: int, org: str, dimension: str, value: str, c: Counter) -> AggregateRow:
    """One row: a dimension value's counter, with its status codes spread over the code columns
    (also used for the uptime table, which has the same layout)."""
    return _row(row_id(unix, org, dimension, value), unix, org, dimension, value, c)


def _row(rid: str, unix: int, org: str, dimension: str, value: str, c: Counter) -> AggregateRow:
    """The row of :func:`counter_row` with its id given; built as the tuple directly (the named
    tuple's generated ``__new__`` was a tenth of the cost of a row)."""
    row: AggregateRow = _new_row(
        AggregateRow,
        (
            rid,
            org,
            dimension,
            value,
            unix,
            c.hits,
            c.success,
            c.error_total,
            c.request_time,
            c.total_request_time,
            c.identifier,
            c.human_identifier,
            c.last_time,
            c.open_connections,
            c.closed_connections,
            c.bytes_in,
            c.bytes_out,
            c.max_upstream_latency,
            c.min_upstream_latency,
            c.total_upstream_latency,
            c.upstream_latency,
            c.max_latency,
            c.min_latency,
            c.total_latency,
            c.latency,
            *_codes(c.error_map),
        ),
    )
    return row


_RULE_INDEX: tuple[tuple[int, Merge, int, int], ...] = tuple(
    (
        i,
        r.merge,
        SQL_COLUMNS.index(r.total_column) if r.total_column else -1,
        SQL_COLUMNS.index(r.hits_column) if r.hits_column else -1,
    )
    for i, r in enumerate(ON_CONFLICT)
)


def merge_row(stored: Sequence[Any], incoming: Sequence[Any]) -> AggregateRow:
    """The row ``ON CONFLICT (id) DO UPDATE`` leaves behind, computed in Python.

    Averages divide the summed totals by the summed hits (so they survive merges exactly);
    with zero summed hits they are 0 rather than a division error.
    """
    out: list[Any] = []
    for i, merge, total_i, hits_i in _RULE_INDEX:
        a = stored[i]
        if merge is Merge.KEEP:
            out.append(a)
        elif merge is Merge.SUM:
            out.append(a + incoming[i])
        elif merge is Merge.AVG:
            hits = stored[hits_i] + incoming[hits_i]
            out.append((stored[total_i] + incoming[total_i]) / hits if hits else 0.0)
        elif merge is Merge.MAX:
            out.append(max(a, incoming[i]))
        elif merge is Merge.MIN:
            out.append(min(a, incoming[i]))
        else:
            out.append(incoming[i])
    return AggregateRow(*out)


def day_runs(records: Sequence[Record], sharding: bool) -> Iterator[tuple[str, Sequence[Record]]]:
    """Split a batch into ``(table, records)`` runs, as the SQL aggregate pump writes them.

    Without sharding the whole batch is one run into ``tyk_aggregated``. With sharding each run of
    *consecutive* records with the same calendar date (in the record's zone) goes to that day's
    table; a date that reappears later starts another run (and so, possibly, another bucket).
    """
    if not records:
        return
    if not sharding:
        yield AGGREGATE_TABLE, records
        return
    start = 0
    day = records[0].timestamp.date()
    for i in range(1, len(records)):
        this_day = records[i].timestamp.date()
        if this_day != day:
            yield table_name(records[start].timestamp), records[start:i]
            start, day = i, this_day
    yield table_name(records[start].timestamp), records[start:]


def build_rows(
    records: Iterable[Record],
    *,
    per_minute: bool = False,
    sharding: bool = False,
    track_all_paths: bool = False,
    ignore_tag_prefixes: Sequence[str] = (),
    extra_dimensions: Sequence[str] = (),
) -> dict[str, list[AggregateRow]]:
    """A whole batch → ``{table: rows}``, each table's rows unique by id and sorted by id.

    Rows for the same id produced by different runs of one batch are pre-merged with
    :func:`merge_row`; upserting the result gives the same table as upserting run by run.
    """
    batch = records if isinstance(records, Sequence) else list(records)
    bucket_of = sql_bucketer(per_minute)
    tables: dict[str, dict[str, AggregateRow]] = {}
    for table, run in day_runs(batch, sharding):
        merged = tables.setdefault(table, {})
        aggregates = aggregate_records(
            run, bucket_of, track_all_paths=track_all_paths, ignore_tag_prefixes=ignore_tag_prefixes, extra_dimensions=extra_dimensions
        )
        for agg in aggregates.values():
            for row in aggregate_rows(agg):
                old = merged.get(row.id)
                merged[row.id] = row if old is None else merge_row(old, row)
    return {table: [rows[k] for k in sorted(rows)] for table, rows in tables.items()}


def row_as_dict(row: AggregateRow) -> dict[str, Any]:
    """A row as ``{column: value}`` (for drivers that bind by name)."""
    return row._asdict()
