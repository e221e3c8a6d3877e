"""What the SQL pumps share: settings, the two backends, schema upkeep, error mapping, the ledger.

Three pumps write SQL (tyk-pump.md §3.5, §4): ``sql`` (raw records), ``sql_aggregate`` and the
uptime ``sql`` pump. They run on PostgreSQL (psycopg 3, async) or on SQLite (stdlib ``sqlite3``
in a worker thread), so everything that depends on the backend lives here, once:

* :class:`SqlMeta` — Tyk's ``SQLConf`` keys, validated; ``type: mysql`` is refused by name, and a
  PostgreSQL connection string libpq cannot parse is refused at ``pump validate``.
* :class:`Target` — where to connect, plus a description that never contains the password
  (``connection_string`` is a ``SecretStr``; :func:`target_of` is where its value is taken out).
* :class:`PgPool` / :class:`SqliteDb` — connections. A broken or interrupted PostgreSQL
  connection is never reused: it is closed and the next write opens a fresh one.
* :func:`map_error` — the one place where driver exceptions become ``RetriableError`` (server
  down, credentials, permissions, locks: the records wait safely in Redis) or
  ``BatchDataError`` (the data itself was refused: the delivery layer isolates the record).
* :class:`Schema` — create tables and indexes, add missing columns to older tables.
* the ledger of applied batch ids that makes aggregate upserts exactly-once
  (:class:`Ledger`, :func:`pending_parts`).

Identifiers are never taken from data: every table name passes :func:`checked_table` (a fixed
prefix plus an optional ``_YYYYMMDD``) and is quoted with ``psycopg.sql.Identifier`` on
PostgreSQL. Values always travel as bind parameters or as escaped COPY text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from pump.config.model import StrictModel
from pump.errors import BatchDataError, RetriableError, SinkError
from pump.record import LOCAL_ZONE, shard_suffix
from pump.redact import SecretDsn, scrub
from pump.sinks.base import SinkMeta

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The backends this pump speaks. MySQL (Tyk's other SQL type) is refused with a clear message.
BACKENDS = ("postgres", "sqlite")
#: Where an SQLite pump writes when no connection_string is given.
DEFAULT_SQLITE_PATH = "pump.sqlite"
#: PostgreSQL connection defaults, applied only when the connection string does not set them.
PG_DEFAULTS: dict[str, Any] = {
    "connect_timeout": 10,
    "application_name": "pump",
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}

# --------------------------------------------------------------------------- settings


class _Options(StrictModel):
    pass


class PostgresOptions(_Options):
    """Tyk's ``postgres`` block. ``prefer_simple_protocol`` turns off server-side prepared
    statements (needed behind PgBouncer in transaction mode), as it does in Tyk."""

    prefer_simple_protocol: bool = False


class MysqlOptions(_Options):
    """Tyk's ``mysql`` block: accepted so a Tyk file loads, without effect (MySQL is refused)."""

    default_string_size: int = 256
    disable_datetime_precision: bool = False
    dont_support_rename_index: bool = False
    dont_support_rename_column: bool = False
    skip_initialize_with_version: bool = False


_PG_URL = re.compile(r"^postgres(ql)?://", re.I)
_PG_KEYWORDS = re.compile(r"(^|\s)(host|hostaddr|dbname|user|port|service|sslmode)\s*=", re.I)


def infer_backend(connection_string: str) -> str:
    """``postgres`` for a libpq URL or ``key=value`` string, else ``sqlite`` (a file path)."""
    s = connection_string.strip()
    return "postgres" if _PG_URL.match(s) or _PG_KEYWORDS.search(s) else "sqlite"


class SqlMeta(SinkMeta):
    """Tyk's ``SQLConf`` (tyk-pump.md §4 "SQL family"), shared by ``sql`` and ``sql_aggregate``."""

    type: str = Field("", description="postgres or sqlite; empty = guessed from connection_string")
    connection_string: SecretDsn = Field(
        SecretStr(""), validate_default=True, description="libpq URL/keywords for postgres, a file path for sqlite"
    )
    postgres: PostgresOptions = Field(default_factory=PostgresOptions)
    mysql: MysqlOptions = Field(default_factory=MysqlOptions)
    table_sharding: bool = Field(False, description="one table per day: <table>_YYYYMMDD")
    log_level: str = Field("", description="Tyk's gorm log level; accepted, no effect (use the pump's log_level)")
    batch_size: int = Field(1000, ge=0, description="rows per statement / COPY chunk; 0 = 1000")
    migrate_sharded_tables: bool = Field(False, description="at start, add missing columns to every existing shard")
    omit_index_creation: bool = Field(False, description="do not create Tyk's indexes")
    threshold_len_tag_list: int = Field(1000, description="accepted for Tyk compatibility; no effect in SQL (as in Tyk)")

    @field_validator("type", mode="before")
    @classmethod
    def _type(cls, v: Any) -> Any:
        if not isinstance(v, str):
            return v
        name = v.strip().lower()
        if name == "mysql":
            raise ValueError("MySQL is not supported by this pump; use type: postgres (or sqlite for a local file)")
        if name == "postgresql":
            name = "postgres"
        if name not in ("", *BACKENDS):
            raise ValueError(f"unknown SQL type {v!r}; expected one of: postgres, sqlite")
        return name

    @field_validator("connection_string")
    @classmethod
    def _required_for_postgres(cls, v: SecretStr, info: ValidationInfo) -> SecretStr:
        text = v.get_secret_value().strip()
        backend = info.data.get("type") or (infer_backend(text) if text else "sqlite")
        if backend == "postgres" and not text:
            raise ValueError("required for type postgres, e.g. postgresql://user@host:5432/dbname")
        if backend == "postgres":
            check_pg_dsn(text)
        return v

    @model_validator(mode="after")
    def _backend(self) -> SqlMeta:
        if not self.type:
            text = self.connection_string.get_secret_value()
            self.type = infer_backend(text) if text.strip() else "sqlite"
        return self

    @property
    def rows_per_statement(self) -> int:
        return self.batch_size or 1000


# --------------------------------------------------------------------------- targets and secrets


def check_pg_dsn(dsn: str) -> None:
    """Refuse a connection string libpq cannot parse, at ``pump validate`` rather than at every
    retry. The parser's own message may quote the password: it is scrubbed (the password was
    remembered when the field was validated)."""
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        return  # the driver is missing: reported as such when the pump is built
    try:
        conninfo_to_dict(dsn)
    except Exception as exc:
        reason = scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)[:200]
        raise ValueError(
            f"libpq cannot parse it ({reason}); in a postgresql:// URL percent-encode @ % : / and spaces in the user "
            "name and password (%40 %25 %3A %2F %20), or use key=value keywords (host=db user=tyk dbname=analytics …)"
        ) from None


@dataclass(frozen=True, slots=True)
class Target:
    """Where a SQL pump writes. ``description`` is safe to log; ``dsn`` and ``password`` are the
    secret values taken out of ``connection_string``, for the driver only (kept out of ``repr``)."""

    backend: str
    dsn: str = field(repr=False)
    description: str
    password: str = field(default="", repr=False)
    uri: bool = False

    @property
    def is_postgres(self) -> bool:
        return self.backend == "postgres"


def target_of(meta: SqlMeta) -> Target:
    dsn = meta.connection_string.get_secret_value().strip()
    return _pg_target(dsn) if meta.type == "postgres" else _sqlite_target(dsn)


def _pg_target(dsn: str) -> Target:
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(dsn)
    except Exception:  # the parser's message may echo the string, password included
        return Target("postgres", dsn, "postgres (connection_string could not be parsed)")
    host = str(parts.get("host") or parts.get("hostaddr") or "localhost")
    port = str(parts.get("port") or 5432)
    user = str(parts.get("user") or "")
    db = str(parts.get("dbname") or user or "")
    who = f"{user}@" if user else ""
    password = str(parts.get("password") or "")
    # Scrubbed too: libpq takes what follows an unescaped "@" of a password for the host name.
    return Target("postgres", dsn, scrub(f"postgresql://{who}{host}:{port}/{db}", password), password)


def _sqlite_target(text: str) -> Target:
    path = text or DEFAULT_SQLITE_PATH
    if path.lower().startswith("sqlite:"):
        path = path[len("sqlite:") :].removeprefix("//")
    uri = path.startswith("file:")
    shown = scrub(path.split("?", 1)[0]) if uri else path
    return Target("sqlite", path, f"sqlite:{shown}", uri=uri)


def pg_connect_kwargs(meta: SqlMeta, dsn: str) -> dict[str, Any]:
    """Keyword arguments for ``AsyncConnection.connect``: our defaults for what the string leaves
    unset (timeouts, keepalives), and ``prepare_threshold=None`` for ``prefer_simple_protocol``."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        given = conninfo_to_dict(dsn)
    except Exception:
        given = {}
    kwargs: dict[str, Any] = {k: v for k, v in PG_DEFAULTS.items() if k not in given}
    if meta.postgres.prefer_simple_protocol:
        kwargs["prepare_threshold"] = None
    return kwargs


# --------------------------------------------------------------------------- identifiers

_TABLE = re.compile(r"^(tyk_analytics|tyk_aggregated|tyk_uptime_analytics)(_[0-9]{8})?$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def checked_table(name: str) -> str:
    """A table name this pump may write: a known prefix plus an optional ``_YYYYMMDD``."""
    if not _TABLE.match(name):
        raise ValueError(f"refusing unexpected table name {name!r}")
    return name


def quote(name: str) -> str:
    """A double-quoted identifier for SQLite (and for text shown to users). Only names made of
    letters, digits and ``_`` are accepted, so quoting cannot be escaped."""
    if not _IDENT.match(name):
        raise ValueError(f"refusing unexpected identifier {name!r}")
    return f'"{name}"'


def shard_table(prefix: str, day: datetime | None) -> str:
    return checked_table(prefix if day is None else f"{prefix}_{shard_suffix(day)}")


# --------------------------------------------------------------------------- values


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UNIX_DAY0 = date(1970, 1, 1).toordinal()
_MINUTE_TEXT: dict[int, str] = {}
_SECOND_TEXT: tuple[str, ...] = tuple(f"{s:02d}." for s in range(60))

#: What PostgreSQL text cannot hold is replaced by this character (see :func:`clean`).
REPLACEMENT = "\ufffd"


def _minute_text(minute: int) -> str:
    days, mod = divmod(minute, 1440)
    d = date.fromordinal(days + _UNIX_DAY0) if -_UNIX_DAY0 < days <= 2932896 else date(9999, 12, 31)
    hh, mm = divmod(mod, 60)
    text = f"{d.year:04d}-{d.month:02d}-{d.day:02d} {hh:02d}:{mm:02d}:"
    if len(_MINUTE_TEXT) > 8192:
        _MINUTE_TEXT.clear()
    _MINUTE_TEXT[minute] = text
    return text


def ts_text(ns: int) -> str:
    """Unix nanoseconds as ``YYYY-MM-DD HH:MM:SS.ffffff+00:00`` (UTC, microseconds).

    The same text is a valid ``timestamptz`` literal for PostgreSQL and sorts correctly as an
    SQLite TEXT column. It runs twice per raw record, so the text up to the minute is cached and
    the seconds come from a table: building a datetime per call cost more than the rest of a row."""
    sec, rem = divmod(ns, 1_000_000_000)
    minute, second = divmod(sec, 60)
    head = _MINUTE_TEXT.get(minute) or _minute_text(minute)
    return f"{head}{_SECOND_TEXT[second]}{rem // 1000:06d}+00:00"


def dt_text(dt: datetime) -> str:
    """An aware datetime in the same text form as :func:`ts_text`."""
    delta = dt - _EPOCH
    return ts_text((delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000)


def clean(text: str) -> str:
    """Text PostgreSQL accepts: NUL (impossible in PG text) and bytes that were not UTF-8 (kept
    by the decoder as surrogates) become U+FFFD. Used for both backends, so a row reads the same
    whichever database holds it."""
    if text.isascii():
        return text.replace("\x00", REPLACEMENT) if "\x00" in text else text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text.replace("\x00", REPLACEMENT) if "\x00" in text else text


def utf8(text: str) -> bytes:
    """Encode COPY text; undecodable bytes (surrogates) become U+FFFD instead of failing."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace").encode("utf-8")


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\x00": REPLACEMENT})


def copy_field(value: Any) -> str:
    """One value in PostgreSQL's COPY text format: backslash, tab, newline and CR escaped, NUL
    replaced (PostgreSQL text cannot hold it), booleans as ``t``/``f``, floats exact (repr)."""
    if isinstance(value, str):
        return value.translate(_COPY_ESCAPES)
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, float):
        return repr(value)
    return str(value)  # ints; aware datetimes as "YYYY-MM-DD HH:MM:SS[.ffffff]+HH:MM"


def copy_is_plain(text: str, lines: int, tabs_per_line: int) -> bool:
    """True if ``text`` (``lines`` lines of joined fields) needs no escaping: a few C-speed scans
    over the whole batch instead of a check per value."""
    return (
        text.count("\t") == lines * tabs_per_line
        and text.count("\n") == lines
        and "\\" not in text
        and "\r" not in text
        and "\x00" not in text
    )


# --------------------------------------------------------------------------- errors

_PG_RETRY_CLASSES = ("08", "53", "57", "58", "40", "55", "XX", "HV", "F0")
_PG_DATA_CLASSES = ("22", "23", "54")


def map_error(exc: BaseException, target: Target, doing: str) -> SinkError:
    """One driver exception → the pump error that tells the delivery layer what to do.

    Messages are one line, name the database without its password, and say what to check.
    ``doing`` is a short verb phrase such as ``"write to tyk_analytics"``.
    """
    if isinstance(exc, SinkError):
        return exc
    if isinstance(exc, sqlite3.Error):
        return _sqlite_error(exc, target, doing)
    return _pg_error(exc, target, doing)


def _first_line(exc: BaseException, target: Target) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # libpq wraps the server's reason: "connection to server at … failed: FATAL:  <reason>".
    if "FATAL:" in text:
        text = text.split("FATAL:", 1)[1].strip()
    return scrub(text, target.password)[:400]


_AUTH_MARKERS = (
    "password authentication failed",
    "no password supplied",
    "is not permitted to log in",
    "no pg_hba.conf entry",
    "authentication failed",
    "peer authentication",
)


def _pg_error(exc: BaseException, target: Target, doing: str) -> SinkError:
    import psycopg

    where = target.description
    detail = _first_line(exc, target)
    state = str(getattr(exc, "sqlstate", "") or "")
    low = str(exc).lower()
    if state in ("28P01", "28000") or any(m in low for m in _AUTH_MARKERS) or re.search(r'role ".*" does not exist', low):
        return RetriableError(f"PostgreSQL at {where} refused the login ({detail}); fix user/password in connection_string")
    if state == "3D000" or re.search(r'database ".*" does not exist', low):
        return RetriableError(f"PostgreSQL at {where}: the database does not exist ({detail}); create it or fix connection_string")
    if state == "42501" or "permission denied" in low:
        return RetriableError(
            f"PostgreSQL at {where}: permission denied to {doing} ({detail}); grant the pump's user "
            "CREATE on the schema and SELECT/INSERT/UPDATE/DELETE on its tables"
        )
    if state in ("42P01", "42703"):
        return RetriableError(
            f"PostgreSQL at {where}: table or column missing while trying to {doing} ({detail}); it is recreated on the next attempt"
        )
    if state.startswith(_PG_DATA_CLASSES):
        return BatchDataError(f"PostgreSQL at {where} refused the data while trying to {doing}: {detail}")
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError | OSError | TimeoutError) and not state:
        return RetriableError(f"PostgreSQL at {where} is not reachable ({detail}); is the server running and the address right?")
    if state.startswith(_PG_RETRY_CLASSES) or isinstance(exc, psycopg.Error):
        return RetriableError(f"PostgreSQL at {where} failed to {doing}: {detail}")
    return RetriableError(f"PostgreSQL at {where} failed to {doing}: {type(exc).__name__}: {detail}")


def _sqlite_error(exc: sqlite3.Error, target: Target, doing: str) -> SinkError:
    where = target.description
    detail = _first_line(exc, target)
    low = detail.lower()
    if isinstance(exc, sqlite3.IntegrityError | sqlite3.DataError) or "too big" in low:
        return BatchDataError(f"SQLite {where} refused the data while trying to {doing}: {detail}")
    if "locked" in low or "busy" in low:
        return RetriableError(f"SQLite {where} is locked by another writer ({detail}); retrying")
    if "unable to open" in low:
        return RetriableError(f"SQLite {where} cannot be opened ({detail}); check that the directory exists and is writable")
    if "readonly" in low or "read-only" in low:
        return RetriableError(f"SQLite {where} is read-only ({detail}); check the file's permissions")
    if "no such table" in low or "no such column" in low or "has no column" in low:
        return RetriableError(
            f"SQLite {where}: table or column missing while trying to {doing} ({detail}); it is recreated on the next attempt"
        )
    return RetriableError(f"SQLite {where} failed to {doing}: {detail}")


def is_schema_error(err: BaseException) -> bool:
    """A table or column went missing (dropped by someone): forget what we know of the schema."""
    text = str(err)
    return "table or column missing" in text


# --------------------------------------------------------------------------- connections


class PgPool:
    """A small pool of async PostgreSQL connections (one per concurrent write, at most ``size``).

    Connections are opened lazily; a connection that saw any error, a cancellation, or is left
    inside a transaction is closed instead of returned, so a half-done COPY or a lost server can
    never leak into the next write."""

    def __init__(self, target: Target, kwargs: dict[str, Any], size: int) -> None:
        self.target = target
        self.kwargs = kwargs
        self._idle: list[Any] = []
        self._sem = asyncio.Semaphore(max(1, size))
        self._closed = False

    async def _connect(self, autocommit: bool = True) -> Any:
        import psycopg

        try:
            return await psycopg.AsyncConnection.connect(self.target.dsn, autocommit=autocommit, **self.kwargs)
        except Exception as exc:
            raise map_error(exc, self.target, "connect") from None

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        from psycopg.pq import TransactionStatus

        async with self._sem:
            conn = self._idle.pop() if self._idle else await self._connect()
            ok = False
            try:
                yield conn
                ok = True
            finally:
                reusable = ok and not self._closed and not conn.closed and not conn.broken
                if reusable and conn.info.transaction_status == TransactionStatus.IDLE:
                    self._idle.append(conn)
                else:
                    await _close_quietly(conn)

    async def dedicated(self) -> Any:
        """A connection outside the pool (for ``CREATE INDEX CONCURRENTLY`` in the background)."""
        return await self._connect()

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await _close_quietly(conn)


async def _close_quietly(conn: Any) -> None:
    with contextlib.suppress(Exception):
        await conn.close()


class SqliteDb:
    """One SQLite connection used from worker threads, one operation at a time.

    SQLite has a single writer anyway; the lock also serialises this pump's concurrent writes.
    WAL mode lets readers (``summary()``, a user's ``sqlite3`` shell) read while the pump writes.
    """

    def __init__(self, target: Target) -> None:
        self.target = target
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _open(self) -> sqlite3.Connection:
        if self._conn is None:
            if not self.target.uri and self.target.dsn != ":memory:":
                Path(self.target.dsn).expanduser().parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.target.dsn, timeout=30, isolation_level=None, check_same_thread=False, uri=self.target.uri)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.Error:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            try:
                return fn(self._open())
            except OSError as exc:
                raise RetriableError(f"SQLite {self.target.description} cannot be opened: {exc.strerror or exc}") from None

    async def run(self, fn: Callable[[sqlite3.Connection], T], doing: str) -> T:
        try:
            return await asyncio.to_thread(self._call, fn)
        except sqlite3.Error as exc:
            raise map_error(exc, self.target, doing) from None
        except OverflowError as exc:  # an integer beyond SQLite's 64 bits: the data is refused, not the database
            raise BatchDataError(f"SQLite {self.target.description} refused the data while trying to {doing}: {exc}") from None

    def close_sync(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    async def close(self) -> None:
        await asyncio.to_thread(self.close_sync)


def sqlite_transaction(conn: sqlite3.Connection, body: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``body`` inside ``BEGIN IMMEDIATE`` … ``COMMIT`` (rolled back on any error)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = body(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


# --------------------------------------------------------------------------- schema

#: Column kinds → (PostgreSQL type, SQLite type).
TYPES: dict[str, tuple[str, str]] = {
    "text": ("TEXT", "TEXT"),
    "bigint": ("BIGINT", "INTEGER"),
    "double": ("DOUBLE PRECISION", "REAL"),
    "bool": ("BOOLEAN", "INTEGER"),
    "timestamptz": ("TIMESTAMPTZ", "TEXT"),
}


@dataclass(frozen=True, slots=True)
class TableSpec:
    """The shape of one family of tables (``prefix`` and its ``prefix_YYYYMMDD`` shards)."""

    prefix: str
    columns: tuple[tuple[str, str], ...]  # (name, kind)
    #: (index name suffix, columns) created as ``<table>_<suffix>`` unless omit_index_creation.
    indexes: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)


_SHARD = re.compile(r"^[0-9]{8}$")

#: information_schema ``data_type`` values that accept what the pump writes for each kind.
_COMPATIBLE: dict[str, frozenset[str]] = {
    "text": frozenset({"text", "character varying", "character"}),
    "bigint": frozenset({"bigint", "integer", "smallint", "numeric", "double precision", "real"}),
    "double": frozenset({"double precision", "real", "numeric"}),
    "bool": frozenset({"boolean"}),
    "timestamptz": frozenset({"timestamp with time zone", "timestamp without time zone"}),
}


class Schema:
    """Creates and migrates the tables of one :class:`TableSpec`, remembering what exists.

    A new table is created with its primary key on ``id`` and its indexes in one transaction
    (instant on an empty table). An existing table — e.g. one Tyk Pump created — gets the
    columns it lacks; if it has no ``id`` column, one is added with a unique index (older rows
    keep NULL), because the exactly-once writes rely on ``ON CONFLICT (id)``. Missing ordinary
    indexes on an existing PostgreSQL table are built with ``CREATE INDEX CONCURRENTLY`` in the
    background so writes never wait for them. PostgreSQL DDL runs under an advisory lock so two
    pumps creating the same shard do not collide.
    """

    def __init__(self, spec: TableSpec, target: Target, omit_indexes: bool) -> None:
        self.spec = spec
        self.target = target
        self.omit_indexes = omit_indexes
        self.known: set[str] = set()
        self.background: set[asyncio.Task[None]] = set()

    def forget(self) -> None:
        self.known.clear()

    # -- PostgreSQL --------------------------------------------------------------------------

    async def ensure_pg(self, pool: PgPool, table: str) -> None:
        if table in self.known:
            return
        checked_table(table)
        async with pool.connection() as conn:
            try:
                missing_indexes = await self._pg_ddl(conn, table)
            except SinkError:
                raise
            except Exception as exc:
                raise map_error(exc, self.target, f"create table {table}") from None
        self.known.add(table)
        if missing_indexes:
            task = asyncio.create_task(self._pg_indexes_concurrently(pool, table, missing_indexes), name=f"index-{table}")
            self.background.add(task)
            task.add_done_callback(self.background.discard)

    async def _pg_ddl(self, conn: Any, table: str) -> list[tuple[str, tuple[str, ...]]]:
        from psycopg import sql

        ident = sql.Identifier(table)
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('pump-sql-ddl'))")
            cur = await conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = %s",
                (table,),
            )
            types = dict(await cur.fetchall())
            existing = set(types)
            if not existing:
                cols = sql.SQL(", ").join(
                    sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(TYPES[kind][0])) for name, kind in self.spec.columns
                )
                await conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY (id))").format(ident, cols))
                if not self.omit_indexes:
                    for suffix, columns in self.spec.indexes:
                        await conn.execute(self._pg_index_sql(table, suffix, columns, concurrently=False))
                log.info("Created table.", extra={"table": table, "database": self.target.description})
                return []
            self._warn_on_types(table, types)
            for name, kind in self.spec.columns:
                if name not in existing:
                    await conn.execute(
                        sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                            ident, sql.Identifier(name), sql.SQL(TYPES[kind][0])
                        )
                    )
                    log.info("Added a missing column.", extra={"table": table, "column": name})
            if "id" not in existing:
                # A table created by Tyk Pump has no id: rows written from now on get one, and the
                # unique index is what ON CONFLICT (id) needs.
                await conn.execute(
                    sql.SQL("CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} (id)").format(sql.Identifier(f"{table}_idx_id"), ident)
                )
            if self.omit_indexes:
                return []
            cur = await conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s", (table,))
            have = {row[0] for row in await cur.fetchall()}
            return [(s, c) for s, c in self.spec.indexes if f"{table}_{s}" not in have]

    def _warn_on_types(self, table: str, types: dict[str, str]) -> None:
        """An existing table (e.g. created by another tool) whose column types differ from what
        this pump writes may refuse rows: say so once, at start, naming the columns."""
        odd = {name: types[name] for name, kind in self.spec.columns if name in types and types[name].lower() not in _COMPATIBLE[kind]}
        if odd:
            log.warning(
                "Existing table has columns of unexpected types; writes may be refused.",
                extra={"table": table, "columns": ", ".join(f"{n} {t}" for n, t in sorted(odd.items()))},
            )

    @staticmethod
    def _pg_index_sql(table: str, suffix: str, columns: tuple[str, ...], concurrently: bool) -> Any:
        from psycopg import sql

        return sql.SQL("CREATE INDEX {} IF NOT EXISTS {} ON {} ({})").format(
            sql.SQL("CONCURRENTLY") if concurrently else sql.SQL(""),
            sql.Identifier(f"{table}_{suffix}"),
            sql.Identifier(table),
            sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        )

    async def _pg_indexes_concurrently(self, pool: PgPool, table: str, indexes: list[tuple[str, tuple[str, ...]]]) -> None:
        """Build missing indexes of an existing table without blocking writes; failures are logged."""
        try:
            conn = await pool.dedicated()
        except SinkError as exc:
            log.warning("Could not build missing indexes.", extra={"table": table, "error": str(exc)})
            return
        try:
            for suffix, columns in indexes:
                try:
                    await conn.execute(self._pg_index_sql(table, suffix, columns, concurrently=True))
                    log.info("Created index.", extra={"table": table, "index": f"{table}_{suffix}"})
                except Exception as exc:
                    log.warning(
                        "Could not create index.",
                        extra={"table": table, "index": f"{table}_{suffix}", "error": scrub(str(exc), self.target.password)[:300]},
                    )
        finally:
            await _close_quietly(conn)

    async def pg_shards(self, pool: PgPool) -> list[str]:
        async with pool.connection() as conn:
            try:
                cur = await conn.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_name LIKE %s",
                    (self.spec.prefix.replace("_", "\\_") + "\\_%",),
                )
                names = [row[0] for row in await cur.fetchall()]
            except Exception as exc:
                raise map_error(exc, self.target, "list shard tables") from None
        return sorted(n for n in names if _SHARD.match(n[len(self.spec.prefix) + 1 :]))

    # -- SQLite ------------------------------------------------------------------------------

    def ensure_sqlite(self, conn: sqlite3.Connection, table: str) -> None:
        """Create or migrate ``table`` (called in the SQLite worker thread)."""
        if table in self.known:
            return
        t = quote(checked_table(table))
        existing = {row[1] for row in conn.execute(f"PRAGMA table_info({t})")}
        if not existing:
            cols = ", ".join(f"{quote(name)} {TYPES[kind][1]}" for name, kind in self.spec.columns)
            conn.execute(f"CREATE TABLE IF NOT EXISTS {t} ({cols}, PRIMARY KEY (id))")
            log.info("Created table.", extra={"table": table, "database": self.target.description})
        else:
            for name, kind in self.spec.columns:
                if name not in existing:
                    conn.execute(f"ALTER TABLE {t} ADD COLUMN {quote(name)} {TYPES[kind][1]}")
                    log.info("Added a missing column.", extra={"table": table, "column": name})
            if "id" not in existing:
                conn.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {quote(table + '_idx_id')} ON {t} (id)")
        if not self.omit_indexes:
            for suffix, columns in self.spec.indexes:
                cols = ", ".join(quote(c) for c in columns)
                conn.execute(f"CREATE INDEX IF NOT EXISTS {quote(f'{table}_{suffix}')} ON {t} ({cols})")
        self.known.add(table)

    def sqlite_shards(self, conn: sqlite3.Connection) -> list[str]:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB ?", (self.spec.prefix + "_[0-9]*",))
        return sorted(r[0] for r in rows if _SHARD.match(r[0][len(self.spec.prefix) + 1 :]))

    async def close(self) -> None:
        for task in list(self.background):
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)


def startup_tables(prefix: str, sharding: bool, now: datetime) -> list[str]:
    """Tables prepared at start: the table itself, or today's shard (as Tyk does)."""
    return [shard_table(prefix, now if sharding else None)]


class Backend:
    """The connection side every SQL sink shares: a PostgreSQL pool or a SQLite file, plus the
    schema of its table family. The sinks keep only what they write."""

    def __init__(self, meta: SqlMeta, target: Target, spec: TableSpec, concurrency: int = 1) -> None:
        self.meta = meta
        self.target = target
        self.schema = Schema(spec, target, meta.omit_index_creation)
        self.pool: PgPool | None = PgPool(target, pg_connect_kwargs(meta, target.dsn), concurrency) if target.is_postgres else None
        self.db: SqliteDb | None = None if target.is_postgres else SqliteDb(target)

    async def prepare(
        self,
        prefix: str,
        pg_setup: Callable[[Any], Any] | None = None,
        sqlite_setup: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        """Create or migrate the tables used at start (today's shard when sharding; every shard
        with ``migrate_sharded_tables``), after the optional setup (e.g. the ledger table)."""
        sharding, migrate = self.meta.table_sharding, self.meta.migrate_sharded_tables
        tables = startup_tables(prefix, sharding, datetime.now(LOCAL_ZONE))
        if self.pool is not None:
            if pg_setup is not None:
                async with self.pool.connection() as conn:
                    try:
                        await pg_setup(conn)
                    except Exception as exc:
                        raise map_error(exc, self.target, "prepare the database") from None
            if sharding and migrate:
                tables = sorted(set(tables) | set(await self.schema.pg_shards(self.pool)))
            for table in tables:
                await self.schema.ensure_pg(self.pool, table)
            return
        assert self.db is not None

        def prepare(conn: sqlite3.Connection) -> None:
            if sqlite_setup is not None:
                sqlite_setup(conn)
            names = list(tables)
            if sharding and migrate:
                names = sorted(set(names) | set(self.schema.sqlite_shards(conn)))
            for table in names:
                self.schema.ensure_sqlite(conn, table)

        await self.db.run(prepare, "create the tables")

    async def close(self) -> None:
        await self.schema.close()
        if self.pool is not None:
            await self.pool.close()
        if self.db is not None:
            await self.db.close()

    async def check(self) -> None:
        """``SELECT 1``, for ``pump validate --check``."""
        if self.pool is not None:
            async with self.pool.connection() as conn:
                try:
                    await conn.execute("SELECT 1")
                except Exception as exc:
                    raise map_error(exc, self.target, "run SELECT 1") from None
        else:
            assert self.db is not None
            await self.db.run(lambda conn: conn.execute("SELECT 1").fetchone(), "open the database")


# --------------------------------------------------------------------------- the ledger

LEDGER_TABLE = "pump_applied_batches"
LEDGER_RETENTION_DAYS = 7
_PRUNE_EVERY = 3600.0


def lineage(batch_id: str) -> list[str]:
    """The batch id and every dot-prefix ancestor (``a.1.0`` → ``a``, ``a.1``, ``a.1.0``).

    The delivery layer names split halves ``<id>.0``/``<id>.1`` and partial retries ``<id>.rN``,
    so a batch is applied when it or any ancestor is in the ledger."""
    parts = batch_id.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


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


# --------------------------------------------------------------------------- misc


def chunks(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def concurrency_of(ctx_config: Any, pump: str) -> int:
    """How many writes the delivery layer may run at once for this pump (the pool size)."""
    try:
        return int(ctx_config.delivery_for(pump).concurrency)
    except Exception:
        return 1
