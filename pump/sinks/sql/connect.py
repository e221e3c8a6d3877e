"""Connections: a small async PostgreSQL pool (psycopg 3) and one SQLite file used from a thread.

A broken or interrupted PostgreSQL connection is never reused: it is closed and the next write
opens a fresh one.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

from pump.errors import BatchDataError, RetriableError
from pump.sinks.sql.config import Target
from pump.sinks.sql.errors import map_error

T = TypeVar("T")


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
                    await close_quietly(conn)

    async def dedicated(self) -> Any:
        """A connection outside the pool (for ``CREATE INDEX CONCURRENTLY`` in the background)."""
        return await self._connect()

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await close_quietly(conn)


async def close_quietly(conn: Any) -> None:
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
