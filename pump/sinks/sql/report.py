"""A short text report of what the ``sql_aggregate`` pump wrote: totals, top APIs, top error codes.

Used by the demo (``summary("pump.sqlite")``) and handy after any run::

    python -c "from pump.sinks.sql.report import summary; print(summary('postgresql://…'))"

It reads ``tyk_aggregated`` and every ``tyk_aggregated_YYYYMMDD`` shard, so it works whether or
not ``table_sharding`` is on. Synchronous on purpose: it runs once, outside the daemon.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pump.sinks.sql.config import SqlMeta, Target, target_of
from pump.sinks.sql.errors import map_error
from pump.sinks.sql.schema import checked_table, quote

_AGG = re.compile(r"^tyk_aggregated(_[0-9]{8})?$")


def _target(connection_string: str | Path) -> Target:
    text = str(connection_string)
    return target_of(SqlMeta(connection_string=text))


def _tables(names: Sequence[str]) -> list[str]:
    return sorted(checked_table(n) for n in names if _AGG.match(n))


def _union(tables: Sequence[str], columns: str) -> str:
    return " UNION ALL ".join(f"SELECT {columns} FROM {quote(t)}" for t in tables)


_COLS = "dimension, dimension_value, counter_human_identifier, counter_hits, counter_error, counter_total_latency"


def _queries(tables: Sequence[str], limit: int, mark: str) -> dict[str, str]:
    source = f"({_union(tables, _COLS)}) AS a"
    return {
        "total": f"SELECT COALESCE(SUM(counter_hits), 0), COALESCE(SUM(counter_error), 0) FROM {source} WHERE dimension = ''",
        "apis": (
            f"SELECT dimension_value, MAX(counter_human_identifier), SUM(counter_hits), SUM(counter_error), "
            f"SUM(counter_total_latency) FROM {source} WHERE dimension = 'apiid' "
            f"GROUP BY dimension_value ORDER BY 3 DESC, 1 LIMIT {mark}"
        ),
        "errors": (
            f"SELECT dimension_value, SUM(counter_hits) FROM {source} WHERE dimension = 'errors' "
            f"GROUP BY dimension_value ORDER BY 2 DESC, 1 LIMIT {mark}"
        ),
    }


def _fetch_sqlite(target: Target, limit: int) -> tuple[list[str], dict[str, list[tuple[Any, ...]]]]:
    if not target.uri and not Path(target.dsn).expanduser().exists():
        return [], {}
    conn = sqlite3.connect(target.dsn, uri=target.uri, timeout=30)
    try:
        tables = _tables([r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")])
        if not tables:
            return [], {}
        return tables, {
            k: conn.execute(q, (limit,)).fetchall() if k != "total" else conn.execute(q).fetchall()
            for k, q in _queries(tables, limit, "?").items()
        }
    except sqlite3.Error as exc:
        raise map_error(exc, target, "read the aggregates") from None
    finally:
        conn.close()


def _fetch_pg(target: Target, limit: int) -> tuple[list[str], dict[str, list[tuple[Any, ...]]]]:
    import psycopg

    try:
        with psycopg.connect(target.dsn, connect_timeout=10) as conn:
            names = [r[0] for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
            ).fetchall()]  # fmt: skip
            tables = _tables(names)
            if not tables:
                return [], {}
            out = {}
            for key, q in _queries(tables, limit, "%s").items():
                out[key] = conn.execute(q.encode(), (limit,) if key != "total" else None).fetchall()
            return tables, out
    except psycopg.Error as exc:
        raise map_error(exc, target, "read the aggregates") from None


def _fetch_mysql(target: Target, limit: int) -> tuple[list[str], dict[str, list[tuple[Any, ...]]]]:
    from pump.sinks.sql.mysql import MysqlDb

    def fetch(conn: Any) -> tuple[list[str], dict[str, list[tuple[Any, ...]]]]:
        with conn.cursor() as cur:
            cur.execute("SET SESSION sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES')")
            cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()")
            tables = _tables([str(r[0]) for r in cur.fetchall()])
            out: dict[str, list[tuple[Any, ...]]] = {}
            for key, q in _queries(tables, limit, "%s").items() if tables else ():
                cur.execute(q, (limit,) if key != "total" else None)
                out[key] = list(cur.fetchall())
            return tables, out

    db = MysqlDb(target)
    try:
        return db._call(fetch)
    except Exception as exc:
        from pump.sinks.sql.mysql import map_mysql_error

        raise map_mysql_error(exc, target, "read the aggregates") from None
    finally:
        db.close_sync()


def summary(connection_string: str | Path, limit: int = 5) -> str:
    """Totals, the top ``limit`` APIs by requests and the top error codes, as printable text.

    ``connection_string`` is a PostgreSQL URL/keyword string, a MySQL DSN or an SQLite file path,
    as in the pump's ``connection_string``."""
    target = _target(connection_string)
    if target.is_mysql:
        tables, rows = _fetch_mysql(target, limit)
    else:
        tables, rows = _fetch_pg(target, limit) if target.is_postgres else _fetch_sqlite(target, limit)
    if not tables:
        return f"No aggregate table (tyk_aggregated) in {target.description} yet: has the sql_aggregate pump run?"
    hits, errors = (int(v or 0) for v in rows["total"][0])
    share = f"{100 * errors / hits:.1f}%" if hits else "-"
    lines = [
        f"Aggregates in {target.description} ({len(tables)} table{'s' if len(tables) != 1 else ''})",
        f"Requests: {hits:,}   errors: {errors:,} ({share})",
        "",
        "Top APIs by requests",
        f"  {'API':40} {'requests':>10} {'errors':>8} {'avg latency':>12}",
    ]
    for api_id, name, api_hits, api_errors, total_latency in rows["apis"]:
        label = f"{name} ({api_id})" if name and name != api_id else str(api_id)
        avg = f"{int(total_latency or 0) / int(api_hits):.1f} ms" if api_hits else "-"
        lines.append(f"  {label[:40]:40} {int(api_hits or 0):>10,} {int(api_errors or 0):>8,} {avg:>12}")
    if not rows["apis"]:
        lines.append("  (none)")
    lines += ["", "Top error codes", f"  {'code':6} {'count':>10}"]
    for code, count in rows["errors"]:
        lines.append(f"  {code!s:6} {int(count or 0):>10,}")
    if not rows["errors"]:
        lines.append("  (none)")
    return "\n".join(lines)
