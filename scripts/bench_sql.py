"""Rows ``sql``, ``sql_aggregate``, the GraphQL/MCP SQL pumps (PostgreSQL) and ``sql-mysql``,
``sql_aggregate-mysql`` (MariaDB) of ``scripts/bench``.

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


def _mysql_database(start_server: Callable[[str], str], row: str) -> str:
    """A new database for this row on the (once started) MariaDB, as :func:`_database`."""
    import pymysql

    from pump.sinks.sql.mysql import parse_dsn

    url = os.environ.get("PUMP_TEST_MYSQL_DSN") or start_server("mysql")
    os.environ["PUMP_TEST_MYSQL_DSN"] = url
    name = f"pump_bench_{row.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
    kwargs, _, _ = parse_dsn(url)
    with pymysql.connect(**kwargs, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")  # the name is made above from a uuid
    return url.rsplit("/", 1)[0] + "/" + name


def mysql_row(workdir: Path, start_server: Callable[[str], str]) -> dict[str, Any]:
    dsn = _mysql_database(start_server, "sql")
    return {"sql": {"type": "sql", "meta": {"type": "mysql", "connection_string": dsn}}}


def mysql_aggregate_row(workdir: Path, start_server: Callable[[str], str]) -> dict[str, Any]:
    dsn = _mysql_database(start_server, "sql_aggregate")
    return {"sql_aggregate": {"type": "sql_aggregate", "meta": {"type": "mysql", "connection_string": dsn}}}


def _pg_pump(pump_type: str) -> Callable[[Path, Callable[[str], str]], dict[str, Any]]:
    """A GraphQL/MCP pump on PostgreSQL. The bench traffic has no GraphQL or MCP records, so these
    rows measure what such a pump costs the pipeline when it filters a REST stream."""

    def row(workdir: Path, start_server: Callable[[str], str]) -> dict[str, Any]:
        dsn = _database(start_server, pump_type.replace("-", "_"))
        return {pump_type: {"type": pump_type, "meta": {"type": "postgres", "connection_string": dsn}}}

    return row


ROWS: dict[str, Callable[[Path, Callable[[str], str]], dict[str, Any]]] = {
    "sql": sql_row,
    "sql_aggregate": sql_aggregate_row,
    "sql-mysql": mysql_row,
    "sql_aggregate-mysql": mysql_aggregate_row,
    **{t: _pg_pump(t) for t in ("sql-graph", "sql-graph-aggregate", "sql-mcp", "sql-mcp-aggregate")},
}
