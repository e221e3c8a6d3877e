"""Bench rows of issue 13 items 4 and 6: rollups, the WSO2 summary mode, scheduled publishing.

End to end (``scripts/bench --sinks sql_aggregate,sql_aggregate+rollups,sql_aggregate+publish,wso2_summary``),
each on a fresh PostgreSQL database like ``sql_aggregate`` (``scripts/bench_sql.py``), so the
difference to that row is the cost of the option; ``mongo-pump-aggregate+rollups`` likewise beside
``mongo-pump-aggregate`` (``scripts/bench_mongo.py``), with the hour, day and month rollups.

In process (``scripts/bench --sinks rollup-rows``): building the rows of a batch, no I/O —
``rows: tyk_aggregated`` (the ceiling), then with every rollup, then the WSO2 summary rows.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

ALL = ["minute", "hour", "day", "month", "year"]


def _pg(start_server: Callable[[str], str], row: str) -> dict[str, Any]:
    from bench_sql import _database

    return {"type": "postgres", "connection_string": _database(start_server, row.replace("+", "_").replace("-", "_"))}


def rollups_row(workdir: Path, start_server: Callable[[str], str]) -> dict[str, Any]:
    return {"agg": {"type": "sql_aggregate", "meta": {**_pg(start_server, "rollups"), "rollups": ALL}}}


def publish_row(workdir: Path, start_server: Callable[[str], str]) -> dict[str, Any]:
    return {"agg": {"type": "sql_aggregate", "meta": {**_pg(start_server, "publish"), "publish_interval": "60m"}}}


def wso2_row(workdir: Path, start_server: Callable[[str], str]) -> dict[str, Any]:
    return {"wso2": {"type": "sql_aggregate", "meta": {**_pg(start_server, "wso2"), "mode": "wso2_summary"}}}


def mongo_rollups_row(workdir: Path, start_server: Callable[[str], str]) -> dict[str, Any]:
    from bench_mongo import aggregate_row

    pumps = aggregate_row(workdir, start_server)
    for pump in pumps.values():  # minute rollups of six hours of traffic are ~360 documents a batch: FerretDB-bound
        pump["meta"]["rollups"] = ["hour", "day", "month"]
    return pumps


ROWS: dict[str, Callable[[Path, Callable[[str], str]], dict[str, Any]]] = {
    "sql_aggregate+rollups": rollups_row,
    "sql_aggregate+publish": publish_row,
    "wso2_summary": wso2_row,
    "mongo-pump-aggregate+rollups": mongo_rollups_row,
}


def row_rows(payloads: list[bytes], chunk: int = 5000) -> list[tuple[str, float, None, float]]:
    """``(row, records/s, None, seconds)`` of building the rows of every batch."""
    from pump.aggregate.rollups import rollup_rows
    from pump.aggregate.sql_rows import build_rows
    from pump.aggregate.wso2 import summary_rows
    from pump.decode import msgpack as mp

    records = [mp.decode_record(p) for p in payloads]
    batches = [records[i : i + chunk] for i in range(0, len(records), chunk)]
    options: dict[str, Any] = {"track_all_paths": False, "ignore_tag_prefixes": (), "extra_dimensions": ()}
    builders: dict[str, Callable[..., object]] = {
        "rows: tyk_aggregated": lambda b: build_rows(b),
        **{f"rows: + {g} rollup": (lambda b, g=g: (build_rows(b), rollup_rows(b, [g], options))) for g in ALL},
        "rows: + 5 rollups": lambda b: (build_rows(b), rollup_rows(b, ALL, options)),
        "rows: wso2_summary (5)": lambda b: summary_rows(b, ALL),
    }
    out: list[tuple[str, float, None, float]] = []
    for name, build in builders.items():
        gc.collect()
        t = time.perf_counter()
        for batch in batches:
            build(batch)
        elapsed = max(time.perf_counter() - t, 1e-9)
        out.append((name, len(records) / elapsed, None, elapsed))
    return out
