"""``sql``: Tyk's raw SQL pump — one row per request in ``tyk_analytics`` (or ``_YYYYMMDD`` shards).

Columns carry Tyk's names (tyk-pump.md §2.1: gorm ``column`` tags, else JSON tags, embedded
structs prefixed), plus ``id``: the record's stable id as primary key, so a redelivered batch
writes nothing twice. MCP records are skipped, as in Tyk.

PostgreSQL: the batch is formatted as COPY text in one pass and COPYed straight into the table in
one transaction. If an id is already there (a redelivered batch), that transaction rolls back and
the batch goes through a temporary staging table and ``INSERT … SELECT … ON CONFLICT (id) DO
NOTHING`` instead — bulk-load speed in the common case, idempotent writes always. SQLite: ``executemany`` of the same insert, in one
transaction. See ``docs/sinks/sql.md`` for types and choices (NUL, time zone, tags).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from pump import schema
from pump.decode.msgpack import encode_record, record_id
from pump.errors import SinkError
from pump.gotime import shard_day, ts_text
from pump.record import Record
from pump.sinks.base import SinkBatch, SinkContext
from pump.sinks.sql import mysql
from pump.sinks.sql.backend import Backend, chunks, concurrency_of
from pump.sinks.sql.columns import RAW_COLUMNS, RAW_INDEXES, SQL_FIELDS, SUB_VALUES, city_names_json, tags_json
from pump.sinks.sql.config import SqlMeta, Target, target_of
from pump.sinks.sql.connect import sqlite_transaction
from pump.sinks.sql.errors import is_schema_error, map_error
from pump.sinks.sql.schema import TYPES, TableSpec, checked_table, quote, shard_table
from pump.sinks.sql.shape import RowShape
from pump.sinks.sql.values import clean, copy_field, copy_is_plain, utf8

log = logging.getLogger(__name__)

RAW_TABLE = "tyk_analytics"

RAW_SPEC = TableSpec(RAW_TABLE, RAW_COLUMNS, RAW_INDEXES)
COLUMN_NAMES: tuple[str, ...] = RAW_SPEC.names
_TEXT_POSITIONS = tuple(i for i, (_, kind) in enumerate(RAW_COLUMNS) if kind in ("text",))
_BOOL_POSITIONS = tuple(i for i, (_, kind) in enumerate(RAW_COLUMNS) if kind == "bool")
_TABS = len(RAW_COLUMNS) - 1
STAGE_TABLE = "pump_stage_raw"


class Meta(SqlMeta):
    """Tyk's ``SQLConf``; the raw pump needs nothing more (its rows are idempotent by id)."""


# --------------------------------------------------------------------------- row formatting


def rid(r: Record) -> str:
    """The record's id. Decoded records carry one; a record built in code gets the id its gateway
    encoding would have (or, if it cannot be encoded, a hash of its JSON form)."""
    if r.record_id:
        return r.record_id
    try:
        return record_id(encode_record(r))
    except (UnicodeEncodeError, OverflowError, TypeError, ValueError):
        return record_id(json.dumps(r.to_json(), sort_keys=True, default=str).encode())


def _value(f: schema.Field) -> str:
    """Source of one field's Python value(s) in :func:`row_values`."""
    a = f"r.{f.attr}"
    if f.attr in SUB_VALUES:
        return f"*_{f.attr}({a})"
    return {
        schema.TIME: f"ts_text({a}_ns)",
        schema.TAGS: f"tags_json({a})",
        schema.BOOL: f"bool({a})",
        schema.NAMES: f"city_names_json({a})",
    }.get(f.type, a)


_NAMESPACE: dict[str, Any] = {
    "__name__": __name__,
    "rid": rid,
    "ts_text": ts_text,
    "tags_json": tags_json,
    "city_names_json": city_names_json,
    "copy_field": copy_field,
    **{f"_{attr}": fn for attr, fn in SUB_VALUES.items()},
}

#: One record as Python values in column order (SQLite parameters, and the COPY slow path).
row_values: Callable[[Record], tuple[Any, ...]] = schema.compile_function(
    "row_values",
    f"def row_values(r):\n    return (rid(r), {', '.join(_value(f) for f in SQL_FIELDS)})\n",
    _NAMESPACE,
)


_FLOATS: dict[float, str] = {}


def float_text(value: float) -> str:
    """``repr`` of a coordinate, cached: records repeat the same few city coordinates, and a
    dict lookup costs a fifth of a float repr."""
    text = repr(value)
    if len(_FLOATS) > 4096:
        _FLOATS.clear()
    _FLOATS[value] = text
    return text


# The GraphQL/MCP stats fields (the table's last, contiguous ones) are one COPY field group:
# :func:`stats_copy` returns a constant for the usual record that has neither.
_STATS = tuple(f for f in SQL_FIELDS if f.attr in SUB_VALUES)
_PLAIN = SQL_FIELDS[: len(SQL_FIELDS) - len(_STATS)]
assert SQL_FIELDS[len(_PLAIN) :] == _STATS, "the GraphQL/MCP stats fields must be the last SQL fields"
_NO_STATS_COPY = "\t".join(copy_field(v) for f in _STATS for v in SUB_VALUES[f.attr](None))

#: Each stats field's Go zero struct as the decoders hand it over. Every REST record from a
#: gateway carries both structs zero-valued (not absent), so "no stats" must mean absent *or equal
#: to the zero struct*. Equality is exact here: the zero struct's values are ``None``, ``""``,
#: ``0`` and ``False``, and every value equal to one of those renders as the same column values.
_STATS_ZERO: dict[str, dict[str, Any]] = {f.attr: {s.go: s.zero for s in schema.SUBFIELDS[f.type]} for f in _STATS}


def _no_stats_test(f: schema.Field) -> str:
    return f"(not r.{f.attr} or r.{f.attr} == _ZERO_{f.attr})"


#: COPY fields of the GraphQL and MCP columns (a constant for the usual record without them; one
#: C-level dict comparison per field decides it, instead of rendering eleven values per record).
stats_copy: Callable[[Record], str] = schema.compile_function(
    "stats_copy",
    "def stats_copy(r):\n"
    f"    if {' and '.join(_no_stats_test(f) for f in _STATS)}:\n"
    "        return _NO_STATS_COPY\n"
    f"    return '\\t'.join(map(copy_field, ({''.join(f'*_{f.attr}(r.{f.attr}), ' for f in _STATS)})))\n",
    {**_NAMESPACE, "_NO_STATS_COPY": _NO_STATS_COPY, **{f"_ZERO_{a}": z for a, z in _STATS_ZERO.items()}},
)


def _copy_value(f: schema.Field) -> str:
    """Source of one field's COPY text in :func:`copy_line` (unescaped)."""
    a = f"r.{f.attr}"
    return {
        schema.TIME: f"{{ts_text({a}_ns)}}",
        schema.TAGS: f"{{tags_json({a}) if {a} else '[]'}}",
        schema.NAMES: f"{{city_names_json({a}) if {a} else '{{}}'}}",
        schema.BOOL: f"{{'t' if {a} else 'f'}}",
        schema.FLOAT: f"{{_FLOATS.get({a}) or float_text({a})}}",
    }.get(f.type, f"{{{a}}}")


#: One record as a line of PostgreSQL COPY text, unescaped (the fast path: one f-string).
#: :func:`copy_text` checks the result and re-renders the rare line whose values contain a tab,
#: newline, carriage return, backslash or NUL.
copy_line: Callable[[Record], str] = schema.compile_function(
    "copy_line",
    'def copy_line(r):\n    return f"{r.record_id or rid(r)}\\t'
    + "\\t".join([*(_copy_value(f) for f in _PLAIN), *(["{stats_copy(r)}"] if _STATS else [])])
    + '\\n"\n',
    {**_NAMESPACE, "_FLOATS": _FLOATS, "float_text": float_text, "stats_copy": stats_copy},
)


def copy_line_slow(r: Record) -> str:
    """The escaped COPY line of a record whose text needs escaping (or NUL replacement)."""
    return "\t".join(copy_field(v) for v in row_values(r)) + "\n"


def copy_text(records: Sequence[Record]) -> str:
    """COPY text of a batch. The whole text is checked at once (a few C-speed scans); only if it
    holds a special character are lines checked one by one and the odd ones re-rendered."""
    lines = [copy_line(r) for r in records]
    text = "".join(lines)
    if copy_is_plain(text, len(lines), _TABS):
        return text
    return "".join(line if copy_is_plain(line, 1, _TABS) else copy_line_slow(r) for line, r in zip(lines, records, strict=True))


def sqlite_row(r: Record) -> tuple[Any, ...]:
    values = list(row_values(r))
    for i in _TEXT_POSITIONS:
        values[i] = clean(values[i])
    for i in _BOOL_POSITIONS:
        values[i] = 1 if values[i] else 0
    return tuple(values)


def _not_mcp(r: Record) -> bool:
    return not (r.mcp_stats and r.mcp_stats.get("IsMCP"))


#: ``sql``: every record but MCP ones, with the COPY line generated from the schema table.
RAW_SHAPE = RowShape(RAW_SPEC, STAGE_TABLE, _not_mcp, row_values, copy_text, sqlite_row)


# --------------------------------------------------------------------------- sharding


def day_key(r: Record) -> str:
    """``YYYYMMDD`` of the record's time in its zone (the pump's local zone after msgpack, the
    record's own zone after protobuf) — the date Tyk's sharding uses."""
    return shard_day(r.timestamp_ns, r.tz)


def group_by_table(records: Sequence[Record], sharding: bool, shape: RowShape | None = None) -> dict[str, list[Record]]:
    """Records to write per table; for ``sql`` MCP records are dropped (Tyk's raw SQL pump skips
    them), the graph and MCP pumps keep only their own records."""
    shape = shape or RAW_SHAPE
    prefix = shape.spec.prefix
    kept = [r for r in records if shape.keep(r)]
    if not sharding:
        return {prefix: kept} if kept else {}
    groups: dict[str, list[Record]] = {}
    for r in kept:
        groups.setdefault(f"{prefix}_{day_key(r)}", []).append(r)
    return groups


# --------------------------------------------------------------------------- the sink


class SqlSink:
    """Raw records into PostgreSQL or SQLite; idempotent by record id."""

    def __init__(self, name: str, meta: SqlMeta, target: Target, concurrency: int = 1, shape: RowShape | None = None) -> None:
        self.name = name
        self.meta = meta
        self.target = target
        self.shape = shape or RAW_SHAPE
        self.backend = Backend(meta, target, self.shape.spec, concurrency)
        self.schema, self.pool, self.db = self.backend.schema, self.backend.pool, self.backend.db
        self._staged: weakref.WeakSet[Any] = weakref.WeakSet()
        self.written = 0
        self.duplicates = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, create or migrate the table (today's shard when sharding), as Tyk does at start."""
        await self.backend.prepare(self.shape.spec.prefix)
        log.info("SQL pump ready.", extra={"pump": self.name, "database": self.target.description, "sharding": self.meta.table_sharding})

    async def close(self) -> None:
        await self.backend.close()

    async def check(self) -> None:
        await self.backend.check()

    # -- writing -----------------------------------------------------------------------------

    async def write(self, batch: SinkBatch) -> None:
        groups = group_by_table(batch.records, self.meta.table_sharding, self.shape)
        if not groups:
            return
        try:
            if self.pool is not None:
                await self._write_pg(groups)
            elif self.backend.my is not None:
                await self._write_mysql(groups)
            else:
                await self._write_sqlite(groups)
        except SinkError as exc:
            if is_schema_error(exc):
                self.schema.forget()
            raise

    async def _write_pg(self, groups: dict[str, list[Record]]) -> None:
        """COPY the batch straight into its table(s); if any id is already there (a redelivered
        batch, or two writers of the same batch), roll back and write through the staging table
        with ``ON CONFLICT (id) DO NOTHING`` instead. Either way one transaction per batch.

        The direct COPY is the common case and costs the database about a third less than
        staging every batch; the result is the same rows."""
        import psycopg

        assert self.pool is not None
        for table in groups:
            await self.schema.ensure_pg(self.pool, table)
        # Formatting is CPU work done before a connection is taken, so the transaction is short.
        size = self.meta.rows_per_statement * 10
        payloads = {table: [utf8(self.shape.copy_text(part)) for part in chunks(recs, size)] for table, recs in sorted(groups.items())}
        total = sum(len(v) for v in groups.values())
        doing = f"write to {', '.join(sorted(groups))}"
        async with self.pool.connection() as conn:
            try:
                try:
                    async with conn.transaction():
                        for table, parts in payloads.items():
                            await self._copy(conn, table, parts)
                    inserted = total
                except psycopg.errors.UniqueViolation:
                    inserted = await self._write_staged(conn, payloads)
            except Exception as exc:
                raise map_error(exc, self.target, doing) from None
        self._count(inserted, total)

    async def _copy(self, conn: Any, table: str, parts: list[bytes]) -> None:
        from psycopg import sql

        cols = sql.SQL(", ").join(sql.Identifier(c) for c in self.shape.spec.names)
        stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(checked_table(table)), cols)
        async with conn.cursor() as cur, cur.copy(stmt) as copy:
            for data in parts:
                await copy.write(data)

    async def _write_staged(self, conn: Any, payloads: dict[str, list[bytes]]) -> int:
        """COPY into the connection's staging table, then ``INSERT … SELECT … ON CONFLICT (id)
        DO NOTHING`` per table; returns the rows actually inserted."""
        from psycopg import sql

        cols = sql.SQL(", ").join(sql.Identifier(c) for c in self.shape.spec.names)
        stage = sql.Identifier(self.shape.stage)
        inserted = 0
        async with conn.transaction():
            await self._ensure_stage(conn)
            for table, parts in payloads.items():
                async with conn.cursor() as cur:
                    async with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(stage, cols)) as copy:
                        for data in parts:
                            await copy.write(data)
                    await cur.execute(
                        sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT (id) DO NOTHING").format(
                            sql.Identifier(checked_table(table)), cols, cols, stage
                        )
                    )
                    inserted += max(cur.rowcount, 0)
                    await cur.execute(sql.SQL("TRUNCATE {}").format(stage))
        return inserted

    async def _ensure_stage(self, conn: Any) -> None:
        """A temporary table per connection, same columns, no indexes, emptied at commit."""
        if conn in self._staged:
            return
        from psycopg import sql

        cols = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(TYPES[k][0])) for n, k in self.shape.spec.columns)
        await conn.execute(
            sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} ({}) ON COMMIT DELETE ROWS").format(sql.Identifier(self.shape.stage), cols)
        )
        self._staged.add(conn)

    async def _write_sqlite(self, groups: dict[str, list[Record]]) -> None:
        assert self.db is not None
        rows = {table: [self.shape.sqlite_row(r) for r in recs] for table, recs in groups.items()}
        names = ", ".join(quote(c) for c in self.shape.spec.names)
        marks = ", ".join("?" for _ in self.shape.spec.names)

        def body(conn: sqlite3.Connection) -> int:
            for table in rows:
                self.schema.ensure_sqlite(conn, table)

            def insert(c: sqlite3.Connection) -> int:
                n = 0
                for table, values in sorted(rows.items()):
                    stmt = f"INSERT INTO {quote(table)} ({names}) VALUES ({marks}) ON CONFLICT (id) DO NOTHING"
                    before = c.total_changes
                    c.executemany(stmt, values)
                    n += c.total_changes - before
                return n

            return sqlite_transaction(conn, insert)

        inserted = await self.db.run(body, f"write to {', '.join(sorted(groups))}")
        self._count(inserted, sum(len(v) for v in rows.values()))

    async def _write_mysql(self, groups: dict[str, list[Record]]) -> None:
        """Multi-row ``INSERT … ON DUPLICATE KEY UPDATE id = id`` per table, one transaction."""
        my = self.backend.my
        assert my is not None
        rows = {table: [self.shape.sqlite_row(r) for r in recs] for table, recs in groups.items()}

        def body(conn: Any) -> int:
            for table in rows:
                self.backend.ensure_mysql(conn, table)
            return mysql.insert_raw(conn, rows, self.shape.spec, self.meta.rows_per_statement)

        inserted = await my.run(body, f"write to {', '.join(sorted(groups))}")
        self._count(inserted, sum(len(v) for v in rows.values()))

    def _count(self, inserted: int, staged: int) -> None:
        self.written += inserted
        if inserted < staged:
            self.duplicates += staged - inserted
            log.info(
                "Skipped records already in the table (redelivered batch).",
                extra={"pump": self.name, "records": staged - inserted},
            )


def build(ctx: SinkContext, meta: Meta) -> SqlSink:
    return SqlSink(ctx.name, meta, target_of(meta), concurrency_of(ctx.config, ctx.name))


# Re-exported for tests and the report helper.
__all__ = ["COLUMN_NAMES", "RAW_COLUMNS", "RAW_SPEC", "RAW_TABLE", "Meta", "SqlSink", "build", "copy_text", "shard_table"]
