"""Aggregate rows as SQL: the ``INSERT … ON CONFLICT (id) DO UPDATE`` statement rendered from the
merge rules of ``pump.aggregate.sql_rows``, COPY text for PostgreSQL and parameters for SQLite.

Statements are built only from validated identifiers and the rule constants; values always
travel as COPY text or bind parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pump.aggregate.sql_rows import COLUMN_TYPES, SQL_COLUMNS, AggregateRow, Merge, update_rules
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


def copy_rows(rows: Sequence[AggregateRow]) -> str:
    """Aggregate rows as COPY text. ``str`` renders every field type correctly (ints, exact
    floats, aware datetimes with their offset); text needing escapes takes the slow path. Rows
    may carry columns after :data:`SQL_COLUMNS` (the graph aggregate's ``api_id``)."""
    if not rows:
        return ""
    tabs = len(rows[0]) - 1
    lines = ["\t".join(map(str, row)) + "\n" for row in rows]
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
