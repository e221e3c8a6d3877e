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

_KINDS = {"TEXT": "text", "BIGINT": "bigint", "DOUBLE PRECISION": "double", "TIMESTAMPTZ": "timestamptz"}

#: Columns of ``tyk_aggregated`` (and ``tyk_uptime_analytics``) as (name, kind).
AGGREGATE_COLUMNS: tuple[tuple[str, str], ...] = tuple((c, _KINDS[COLUMN_TYPES[c]]) for c in SQL_COLUMNS)

_TEXT_POSITIONS = tuple(i for i, (_, kind) in enumerate(AGGREGATE_COLUMNS) if kind == "text")
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
    greatest, least, cast = ("GREATEST", "LEAST", "DOUBLE PRECISION") if postgres else ("max", "min", "REAL")
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


def upsert_text(table: str, postgres: bool) -> str:
    """The upsert statement for ``table``, built only from validated identifiers and the rule
    constants of ``sql_rows``.

    PostgreSQL: ``INSERT … SELECT`` from the connection's staging table (filled by COPY), in id
    order so concurrent writers lock rows in the same order. SQLite: ``VALUES`` with ``?``
    parameters, for ``executemany``."""
    cols = ", ".join(quote(c) for c in SQL_COLUMNS)
    sets = ", ".join(assignments(table, postgres))
    target = quote(checked_table(table))
    marks = ", ".join("?" for _ in SQL_COLUMNS)
    source = f"SELECT {cols} FROM {quote(STAGE_TABLE)} ORDER BY id" if postgres else f"VALUES ({marks})"
    return f"INSERT INTO {target} ({cols}) {source} ON CONFLICT (id) DO UPDATE SET {sets}"


_TABS = len(SQL_COLUMNS) - 1


def copy_rows(rows: Sequence[AggregateRow]) -> str:
    """Aggregate rows as COPY text. ``str`` renders every field type correctly (ints, exact
    floats, aware datetimes with their offset); text needing escapes takes the slow path."""
    lines = ["\t".join(map(str, row)) + "\n" for row in rows]
    text = "".join(lines)
    if copy_is_plain(text, len(lines), _TABS):
        return text
    return "".join(
        line if copy_is_plain(line, 1, _TABS) else "\t".join(map(copy_field, row)) + "\n" for line, row in zip(lines, rows, strict=True)
    )


def sqlite_params(row: AggregateRow) -> tuple[Any, ...]:
    values: list[Any] = list(row)
    for i in _TEXT_POSITIONS:
        values[i] = clean(values[i])
    values[_TIME_POSITION] = dt_text(values[_TIME_POSITION])
    return tuple(values)
