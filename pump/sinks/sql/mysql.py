"""The MySQL/MariaDB dialect of the SQL pumps (Tyk's ``type: mysql``), through PyMySQL in a worker
thread, one connection at a time (like the SQLite backend).

* Connection strings: Tyk's Go form ``user:pass@tcp(host:3306)/db?charset=utf8mb4&parseTime=True``
  or a ``mysql://user:pass@host:3306/db`` URL. The session writes times in UTC.
* Tables: the same columns as PostgreSQL, ``LONGTEXT`` text (indexes on a 191-character prefix),
  ``DOUBLE`` for Go's float64 (what gorm's MySQL driver creates), ``DATETIME(6)`` in UTC; ``id``
  is ASCII so aggregate ids up to 2,600 characters fit an index.
* Raw rows: multi-row ``INSERT … ON DUPLICATE KEY UPDATE id = id`` (a redelivered record is
  written once). Aggregates: the ledger claim and ``INSERT … ON DUPLICATE KEY UPDATE`` in one
  transaction, as on PostgreSQL. MySQL evaluates ``SET`` assignments left to right, each seeing
  the ones before, so the averages (which read the stored hits and totals) are assigned first.

Identifiers come only from :func:`pump.sinks.sql.schema.checked_table` and the column constants;
values always travel as parameters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pump.aggregate.sql_rows import SQL_COLUMNS, AggregateRow, Merge, update_rules
from pump.errors import BatchDataError, RetriableError, SinkError
from pump.redact import scrub
from pump.sinks.base import lineage
from pump.sinks.sql.config import Target
from pump.sinks.sql.config import parse_mysql_dsn as parse_dsn
from pump.sinks.sql.ledger import LEDGER_TABLE, like_prefix
from pump.sinks.sql.schema import TableSpec, checked_table
from pump.sinks.sql.statements import CONSTANT_COLUMNS, sqlite_params

log = logging.getLogger(__name__)
T = TypeVar("T")


TYPES: dict[str, str] = {
    "text": "LONGTEXT",
    "bigint": "BIGINT",
    "double": "DOUBLE",
    "numeric": "DOUBLE",
    "bool": "BOOLEAN",
    "timestamptz": "DATETIME(6)",
}
ID_TYPE = "VARCHAR(2600) CHARACTER SET ascii NOT NULL"
PREFIX = 191


def ident(name: str) -> str:
    """A backquoted identifier; only letters, digits and ``_`` are accepted."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", name):
        raise ValueError(f"refusing unexpected identifier {name!r}")
    return f"`{name}`"


class MysqlDb:
    """One PyMySQL connection used from worker threads, one operation at a time; a connection
    that saw an error is closed, the next operation opens a fresh one."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.kwargs, _, _ = parse_dsn(target.dsn)
        self._conn: Any = None
        self._lock = threading.Lock()

    def _open(self) -> Any:
        import pymysql

        if self._conn is None:
            self._conn = pymysql.connect(
                **self.kwargs, charset="utf8mb4", autocommit=True, connect_timeout=10, read_timeout=120, write_timeout=120,
                init_command="SET time_zone = '+00:00'",
            )  # fmt: skip
        return self._conn

    def _call(self, fn: Callable[[Any], T]) -> T:
        with self._lock:
            try:
                return fn(self._open())
            except BaseException:
                self._close()
                raise

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    async def run(self, fn: Callable[[Any], T], doing: str) -> T:
        try:
            return await asyncio.to_thread(self._call, fn)
        except SinkError:
            raise
        except Exception as exc:
            raise map_mysql_error(exc, self.target, doing) from None

    def close_sync(self) -> None:
        with self._lock:
            self._close()

    async def close(self) -> None:
        await asyncio.to_thread(self.close_sync)


def transaction(conn: Any, body: Callable[[Any], T]) -> T:
    conn.begin()
    try:
        result = body(conn)
    except BaseException:
        conn.rollback()
        raise
    conn.commit()
    return result


_LOGIN, _NO_DB, _DENIED = {1045, 1698}, {1049}, {1044, 1142, 1143, 1227}
_MISSING = {1146, 1054}
_DATA = {1048, 1264, 1265, 1292, 1366, 1406, 1416, 3140}


def map_mysql_error(exc: BaseException, target: Target, doing: str) -> SinkError:
    """A PyMySQL exception → the pump's delivery error (one line, no password)."""
    import pymysql

    where = target.description
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
    detail = scrub(str(exc.args[1] if len(exc.args) > 1 else exc), target.password)[:400]
    if code in _LOGIN:
        return RetriableError(f"MySQL at {where} refused the login ({detail}); fix user/password in connection_string")
    if code in _NO_DB:
        return RetriableError(f"MySQL at {where}: the database does not exist ({detail}); create it or fix connection_string")
    if code in _DENIED:
        return RetriableError(
            f"MySQL at {where}: permission denied to {doing} ({detail}); "
            "grant the pump's user CREATE, INDEX, ALTER, SELECT, INSERT, UPDATE, DELETE"
        )
    if code in _MISSING:
        return RetriableError(
            f"MySQL at {where}: table or column missing while trying to {doing} ({detail}); it is recreated on the next attempt"
        )
    if code in _DATA or isinstance(exc, pymysql.err.DataError):
        return BatchDataError(f"MySQL at {where} refused the data while trying to {doing}: {detail}")
    if isinstance(exc, OSError | TimeoutError) or code in (2002, 2003, 2005, 2006, 2013, 2055):
        return RetriableError(f"MySQL at {where} is not reachable ({detail}); is the server running and the address right?")
    return RetriableError(f"MySQL at {where} failed to {doing}: {type(exc).__name__}: {detail}")


# --------------------------------------------------------------------------- tables


def ensure_table(conn: Any, spec: TableSpec, table: str, omit_indexes: bool, where: str = "") -> None:
    """Create ``table`` with its indexes, or add the columns and indexes an existing one lacks
    (under a named lock, so two pumps opening the same shard do not collide)."""
    t = ident(checked_table(table))
    with conn.cursor() as cur:
        cur.execute("SELECT GET_LOCK('pump-sql-ddl', 60)")
        try:
            cur.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = %s", (table,))
            existing = {str(r[0]) for r in cur.fetchall()}
            indexes = [] if omit_indexes else [(f"{table}_{s}", cols) for s, cols in spec.indexes]
            kinds = dict(spec.columns)
            if not existing:
                cols = [f"{ident(n)} {ID_TYPE if n == 'id' else TYPES[k]}" for n, k in spec.columns]
                keys = [f"KEY {ident(name)} ({_key_cols(cols_, kinds)})" for name, cols_ in indexes]
                cur.execute(f"CREATE TABLE IF NOT EXISTS {t} ({', '.join([*cols, 'PRIMARY KEY (`id`)', *keys])}) CHARACTER SET utf8mb4")
                log.info("Created table.", extra={"table": table, "database": where})
                return
            for name, kind in spec.columns:
                if name not in existing:
                    cur.execute(
                        f"ALTER TABLE {t} ADD COLUMN {ident(name)} {'VARCHAR(2600) CHARACTER SET ascii' if name == 'id' else TYPES[kind]}"
                    )
                    log.info("Added a missing column.", extra={"table": table, "column": name})
            cur.execute(
                "SELECT DISTINCT index_name FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = %s",
                (table,),
            )
            have = {str(r[0]) for r in cur.fetchall()}
            if "id" not in existing and f"{table}_idx_id" not in have:
                cur.execute(f"CREATE UNIQUE INDEX {ident(table + '_idx_id')} ON {t} (`id`)")
            for name, cols_ in indexes:
                if name not in have:
                    cur.execute(f"CREATE INDEX {ident(name)} ON {t} ({_key_cols(cols_, kinds)})")
        finally:
            cur.execute("SELECT RELEASE_LOCK('pump-sql-ddl')")


def _key_cols(columns: Sequence[str], kinds: dict[str, str]) -> str:
    return ", ".join(f"{ident(c)}({PREFIX})" if kinds.get(c) == "text" and c != "id" else ident(c) for c in columns)


def utc_text(value: Any) -> Any:
    """Our timestamp text ``… +00:00`` without the offset: DATETIME has none (the session is UTC).
    Applied only to the timestamp columns (a text value that looks like a time is left alone)."""
    return value[:-6] if isinstance(value, str) and value.endswith("+00:00") else value


def mysql_row(row: Sequence[Any], time_positions: Sequence[int]) -> tuple[Any, ...]:
    values = list(row)
    for i in time_positions:
        values[i] = utc_text(values[i])
    return tuple(values)


# --------------------------------------------------------------------------- raw rows


def insert_raw(conn: Any, rows: dict[str, list[tuple[Any, ...]]], spec: TableSpec, size: int) -> int:
    """Insert raw rows per table in one transaction; returns the rows actually inserted."""
    columns = spec.names
    times = tuple(i for i, (_, kind) in enumerate(spec.columns) if kind == "timestamptz")
    names = ", ".join(ident(c) for c in columns)
    marks = ", ".join("%s" for _ in columns)

    def body(c: Any) -> int:
        n = 0
        with c.cursor() as cur:
            for table, values in sorted(rows.items()):
                stmt = f"INSERT INTO {ident(checked_table(table))} ({names}) VALUES ({marks}) ON DUPLICATE KEY UPDATE `id` = `id`"
                for start in range(0, len(values), size):
                    n += max(cur.executemany(stmt, [mysql_row(row, times) for row in values[start : start + size]]) or 0, 0)
        return n

    return transaction(conn, body)


# --------------------------------------------------------------------------- aggregates


def upsert_text(table: str, columns: Sequence[str] = SQL_COLUMNS) -> str:
    """``INSERT … ON DUPLICATE KEY UPDATE`` with the merge rules of ``sql_rows``; the averages
    come first because later assignments see the columns updated before them."""
    t = ident(checked_table(table))
    rules = sorted(update_rules(), key=lambda r: r.merge is not Merge.AVG)
    sets = []
    for rule in rules:
        c = ident(rule.column)
        if rule.merge is Merge.SUM:
            expr = f"{t}.{c} + VALUES({c})"
        elif rule.merge is Merge.AVG:
            assert rule.total_column and rule.hits_column
            tot, h = ident(rule.total_column), ident(rule.hits_column)
            # CAST: integer / integer would be DECIMAL division, cut to a few digits.
            hits = f"{t}.{h} + VALUES({h})"
            expr = f"CASE WHEN {hits} = 0 THEN 0 ELSE ({t}.{tot} + VALUES({tot})) / CAST({hits} AS DOUBLE) END"
        elif rule.merge is Merge.MAX:
            expr = f"GREATEST({t}.{c}, VALUES({c}))"
        elif rule.merge is Merge.MIN:
            expr = f"LEAST({t}.{c}, VALUES({c}))"
        else:
            expr = f"VALUES({c})"
        sets.append(f"{c} = {expr}")
    cols = ", ".join(ident(c) for c in (*columns, *(n for n, _ in CONSTANT_COLUMNS)))
    # Only %s placeholders: PyMySQL turns executemany into multi-row INSERTs only then (the
    # constants travel as parameters, see upsert_rows).
    marks = ", ".join(["%s"] * (len(columns) + len(CONSTANT_COLUMNS)))
    return f"INSERT INTO {t} ({cols}) VALUES ({marks}) ON DUPLICATE KEY UPDATE {', '.join(sets)}"


_LAST_TIME = (SQL_COLUMNS.index("counter_last_time"),)


def upsert_rows(cur: Any, table: str, rows: Sequence[AggregateRow], size: int, columns: Sequence[str] = SQL_COLUMNS) -> None:
    stmt = upsert_text(table, columns)
    constants = tuple(v.strip("'") for _, v in CONSTANT_COLUMNS)
    for start in range(0, len(rows), size):
        cur.executemany(stmt, [(*mysql_row(sqlite_params(r), _LAST_TIME), *constants) for r in rows[start : start + size]])


LEDGER_DDL = (
    f"CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} (pump VARCHAR(190) NOT NULL, batch_id VARCHAR(190) CHARACTER SET ascii NOT NULL, "
    f"applied_at BIGINT NOT NULL, PRIMARY KEY (pump, batch_id), KEY {LEDGER_TABLE}_idx_applied_at (applied_at)) CHARACTER SET utf8mb4"
)


def create_ledger(conn: Any) -> None:
    with conn.cursor() as cur:
        cur.execute(LEDGER_DDL)


def claim(cur: Any, pump: str, batch_id: str) -> set[str] | None:
    """Inside the transaction: record ``batch_id`` (waiting for a concurrent writer of the same
    id); None if it or an ancestor is applied, else the applied descendants."""
    cur.execute(f"INSERT IGNORE INTO {LEDGER_TABLE} (pump, batch_id, applied_at) VALUES (%s, %s, %s)", (pump, batch_id, int(time.time())))
    if cur.rowcount != 1:
        return None
    ancestors = lineage(batch_id)[:-1]
    marks = ", ".join("%s" for _ in ancestors) or "NULL"
    cur.execute(
        f"SELECT batch_id FROM {LEDGER_TABLE} WHERE pump = %s AND (batch_id IN ({marks}) OR batch_id LIKE %s ESCAPE '\\\\')",
        (pump, *ancestors, like_prefix(batch_id + ".")),
    )
    related = {str(r[0]) for r in cur.fetchall()}
    if any(a in related for a in ancestors):
        return None
    return related


def prune(conn: Any, pump: str, retention_seconds: float) -> int:
    with conn.cursor() as cur:
        return int(
            cur.execute(f"DELETE FROM {LEDGER_TABLE} WHERE pump = %s AND applied_at < %s", (pump, int(time.time() - retention_seconds)))
            or 0
        )
