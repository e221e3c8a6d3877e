"""The one place where SQL driver exceptions become the pump's delivery errors.

``RetriableError`` for a server that is down, credentials, permissions, locks (the records wait
safely in Redis); ``BatchDataError`` when the data itself was refused (the delivery layer
isolates the record). Messages are one line and never contain the password.
"""

from __future__ import annotations

import re
import sqlite3

from pump.errors import BatchDataError, RetriableError, SinkError
from pump.redact import scrub
from pump.sinks.sql.config import Target

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
