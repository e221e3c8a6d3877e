"""Rows ``sql`` and ``sql_aggregate`` of ``scripts/bench`` (PostgreSQL).

Each row writes into a fresh database on the PostgreSQL that ``start_server("postgres")`` returns
(a private server started through tests/servers, or the one ``PUMP_TEST_POSTGRES_DSN`` names), so
repeated runs never measure inserts into an already-full table.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _database(start_server: Callable[[str], str], row: str) -> str:
    """A new database for this row, on the (once started) server.

    ``scripts/bench`` reloads this module for every row, so the server's URL is remembered in
    ``PUMP_TEST_POSTGRES_DSN`` (of this process): the second row reuses the first row's server."""
    import psycopg

    url = os.environ.get("PUMP_TEST_POSTGRES_DSN") or start_server("postgres")
    os.environ["PUMP_TEST_POSTGRES_DSN"] = url
    name = f"pump_bench_{row}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'.encode())  # the name is made above from a uuid
    return url.rsplit("/", 1)[0] + "/" + name


def sql_row(workdir: Path, start_server: Callable[[str], str]) -> dict[str, Any]:
    dsn = _database(start_server, "sql")
    return {"sql": {"type": "sql", "meta": {"type": "postgres", "connection_string": dsn}, "delivery": {"concurrency": 2}}}


def sql_aggregate_row(workdir: Path, start_server: Callable[[str], str]) -> dict[str, Any]:
    dsn = _database(start_server, "sql_aggregate")
    meta = {"type": "postgres", "connection_string": dsn}  # Tyk's defaults (track_all_paths off)
    return {"sql_aggregate": {"type": "sql_aggregate", "meta": meta}}


ROWS: dict[str, Callable[[Path, Callable[[str], str]], dict[str, Any]]] = {
    "sql": sql_row,
    "sql_aggregate": sql_aggregate_row,
}
