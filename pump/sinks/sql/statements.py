"""Aggregate rows as SQL: the ``INSERT … ON CONFLICT (id) DO UPDATE`` statement rendered from the
merge rules of ``pump.aggregate.sql_rows``, COPY text for PostgreSQL and parameters for SQLite.

Statements are built only from validated identifiers and the rule constants; values always
travel as COPY text or bind parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pump import schema
from pump.aggregate.sql_rows import CODE_COLUMNS, COLUMN_TYPES, SQL_COLUMNS, AggregateRow, Merge, update_rules
from pump.gotime import dt_text
from pump.sinks.sql.schema import checked_table, quote
from pump.sinks.sql.values import clean, copy_field, copy_is_plain

_KINDS = {"TEXT": "text", "BIGINT": "bigint", "DOUBLE PRECISION": "double", "NUMERIC": "numeric", "TIMESTAMPTZ": "timestamptz"}

#: Columns Tyk's tables have besides the rows' (:data:`SQL_COLUMNS`), with the SQL constant every
#: insert writes. Tyk's gorm fork stores the counter's ``error_map``/``error_list`` too, and its SQL
#: aggregate and uptime pumps set both to nil before inserting, so Tyk always writes ``{}`` and
#: ``[]`` there, with or without errors (the counts per code are in the ``code_*`` columns). As in
#: Tyk they are not assigned on conflict.
CONSTANT_COLUMNS: tuple[tuple[str, str], ...] = (("counter_error_map", "'{}'"), ("counter_error_list", "'[]'"))

#: Columns of ``tyk_aggregated`` (and ``tyk_uptime_analytics``) as (name, kind).
AGGREGATE_COLUMNS: tuple[tuple[str, str], ...] = tuple((c, _KINDS[COLUMN_TYPES[c]]) for c in SQL_COLUMNS) + tuple(
    (c, "text") for c, _ in CONSTANT_COLUMNS
)

_TEXT_POSITIONS = tuple(i for i, c in enumerate(SQL_COLUMNS) if COLUMN_TYPES[c] == "TEXT")
_TIME_POSITION = SQL_COLUMNS.index("counter_last_time")
_tab_join = "\t".join


def _avg_expr(table: str, total: str, hits: str, cast: str) -> str:
    t, h = quote(table), quote(hits)
    tot = quote(total)
    return f"CASE WHEN {t}.{h} + excluded.{h} = 0 THEN 0 ELSE ({t}.{tot} + excluded.{tot}) / CAST({t}.{h} + excluded.{h} AS {cast}) END"


def assignments(table: str, postgres: bool) -> list[str]:
    """``column = expression`` for every column the upsert updates, from ``update_rules()``.

    Every expression reads the stored row's values as they were before the statement (SQL
    ``SET`` semantics), exactly like ``sql_rows.merge_row``. Averages are 0 when the summed hits
    are 0 (rows made only by network records) where Tyk's SQL would divide by zero.
    """
    t = quote(checked_table(table))
    # NUMERIC division on PostgreSQL: the average keeps every digit of a double (Tyk's columns are
    # numeric; a float8 result cast back into one would keep only 15 significant digits).
    greatest, least, cast = ("GREATEST", "LEAST", "NUMERIC") if postgres else ("max", "min", "REAL")
    out = []
    for rule in update_rules():
        c = quote(rule.column)
        if rule.merge is Merge.SUM:
            expr = f"{t}.{c} + excluded.{c}"
        elif rule.merge is Merge.AVG:
            assert rule.total_column and rule.hits_column
            expr = _avg_expr(table, rule.total_column, rule.hits_column, cast)
        elif rule.merge is Merge.MAX:
            expr = f"{greatest}({t}.{c}, excluded.{c})"
        elif rule.merge is Merge.MIN:
            expr = f"{least}({t}.{c}, excluded.{c})"
        elif rule.merge is Merge.REPLACE:
            expr = f"excluded.{c}"
        else:  # pragma: no cover - update_rules() never yields KEEP
            continue
        out.append(f"{c} = {expr}")
    return out


STAGE_TABLE = "pump_stage_agg"


def upsert_text(table: str, postgres: bool, columns: Sequence[str] = SQL_COLUMNS) -> str:
    """The upsert statement for ``table``, built only from validated identifiers and the rule
    constants of ``sql_rows``.

    PostgreSQL: ``INSERT … SELECT`` from the connection's staging table (filled by COPY), in id
    order so concurrent writers lock rows in the same order. SQLite: ``VALUES`` with ``?``
    parameters, for ``executemany``."""
    cols = ", ".join(quote(c) for c in columns)
    extra = ", ".join(quote(c) for c, _ in CONSTANT_COLUMNS)
    constants = ", ".join(v for _, v in CONSTANT_COLUMNS)
    sets = ", ".join(assignments(table, postgres))
    target = quote(checked_table(table))
    marks = ", ".join("?" for _ in columns)
    source = f"SELECT {cols}, {constants} FROM {quote(STAGE_TABLE)} ORDER BY id" if postgres else f"VALUES ({marks}, {constants})"
    return f"INSERT INTO {target} ({cols}, {extra}) {source} ON CONFLICT (id) DO UPDATE SET {sets}"


def _zero_runs() -> list[tuple[int, int]]:
    """``(start, stop)`` of the runs of integer columns that are almost always 0 (network
    counters, status codes): rendered as one constant when the whole run is 0."""
    rare = {"counter_open_connections", "counter_closed_connections", "counter_bytes_in", "counter_bytes_out", *CODE_COLUMNS}
    runs: list[tuple[int, int]] = []
    for i, c in enumerate(SQL_COLUMNS):
        if c not in rare:
            continue
        if runs and runs[-1][1] == i:
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    return runs


def _line_source() -> str:
    """Source of :func:`copy_line`: one f-string over the row's columns (as ``str`` renders
    them). Two costs are taken out per batch instead of per row: a run of zero counters is one
    constant (equality with 0 means the same ``bigint``), and the time of a counter — shared by
    the counters one record created — is rendered once per datetime object of the batch."""
    parts: list[str] = []
    prelude: list[str] = []
    runs = {start: stop for start, stop in _zero_runs()}
    i = 0
    while i < len(SQL_COLUMNS):
        if i in runs:
            stop = runs[i]
            prelude.append(f"    z{i} = r[{i}:{stop}]")
            parts.append(f"{{_Z{stop - i} if z{i} == _ZEROS{stop - i} else _tab_join(map(str, z{i}))}}")
            i = stop
            continue
        parts.append(f"{{times.get(id(r[{i}])) or _time_text(times, r[{i}])}}" if i == _TIME_POSITION else f"{{r[{i}]}}")
        i += 1
    return "def copy_line(r, times):\n" + "".join(f"{p}\n" for p in prelude) + '    return f"' + "\\t".join(parts) + '"\n'


def _time_text(times: dict[int, str], value: Any) -> str:
    text = times[id(value)] = str(value)
    return text


_RUN_LENGTHS = {stop - start for start, stop in _zero_runs()}

#: One aggregate row's first :data:`SQL_COLUMNS` as COPY text, unescaped, without the newline;
#: ``times`` maps ``id(datetime)`` to its text for the rows of one call of :func:`copy_rows`
#: (which keeps the rows, hence the ids, alive).
copy_line: Callable[[Sequence[Any], dict[int, str]], str] = schema.compile_function(
    "copy_line",
    _line_source(),
    {
        "__name__": __name__,
        "_time_text": _time_text,
        "_tab_join": "\t".join,
        **{f"_Z{n}": "\t".join(["0"] * n) for n in _RUN_LENGTHS},
        **{f"_ZEROS{n}": (0,) * n for n in _RUN_LENGTHS},
    },
)

_WIDTH = len(SQL_COLUMNS)


def copy_rows(rows: Sequence[AggregateRow]) -> str:
    """Aggregate rows as COPY text, as ``str`` renders every field type (ints, exact floats,
    aware datetimes with their offset); text needing escapes takes the slow path. Rows may carry
    columns after :data:`SQL_COLUMNS` (the graph aggregate's ``api_id``)."""
    if not rows:
        return ""
    tabs = len(rows[0]) - 1
    times: dict[int, str] = {}
    if tabs + 1 == _WIDTH:
        lines = [f"{copy_line(row, times)}\n" for row in rows]
    else:
        lines = [f"{copy_line(row, times)}\t{_tab_join(map(str, row[_WIDTH:]))}\n" for row in rows]
    text = "".join(lines)
    if copy_is_plain(text, len(lines), tabs):
        return text
    return "".join(
        line if copy_is_plain(line, 1, tabs) else "\t".join(map(copy_field, row)) + "\n" for line, row in zip(lines, rows, strict=True)
    )


def sqlite_params(row: AggregateRow) -> tuple[Any, ...]:
    values: list[Any] = list(row)
    for i in _TEXT_POSITIONS:
        values[i] = clean(values[i])
    for i in range(len(SQL_COLUMNS), len(values)):  # extra text columns (api_id)
        values[i] = clean(values[i])
    values[_TIME_POSITION] = dt_text(values[_TIME_POSITION])
    return tuple(values)
