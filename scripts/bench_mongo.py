"""Benchmark rows for the Mongo pumps (loaded by ``scripts/bench``).

``mongo`` writes every record to ``tyk_analytics``; ``mongo-pump-aggregate`` uses the Tyk Dashboard
settings of ``config/pump.tyk-dashboard.json`` (mixed collection, hourly documents, self-healing).
Each row starts its own Mongo-wire server (FerretDB, or ``PUMP_TEST_MONGO_URL``) and a fresh
database, so rows do not see each other's documents.

The aggregate row leaves out the four per-endpoint dimensions (``ignore_aggregations``): the bench
traffic tracks 70 % of requests on paths with random ids, so every 5000-record batch makes an
update with ~55 000 field paths per org, and FerretDB v1 applies an update in time quadratic in
its number of paths (~1.8 s for 4 000 paths) — that row would measure FerretDB for hours, not the
pump. ``BENCH_MONGO_AGG_ENDPOINTS=1`` keeps them (for a real MongoDB).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ENDPOINT_DIMENSIONS = ["endpoints", "keyendpoints", "oauthendpoints", "apiendpoints"]


def _database(url: str, prefix: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{prefix}_{uuid.uuid4().hex[:8]}", parts.query, parts.fragment))


def mongo_row(workdir: Path, start_server: Callable[[str], str]) -> dict[str, Any]:
    url = _database(start_server("mongo"), "bench_raw")
    return {"mongo": {"type": "mongo", "meta": {"mongo_url": url, "collection_name": "tyk_analytics"}}}


def aggregate_row(workdir: Path, start_server: Callable[[str], str]) -> dict[str, Any]:
    url = _database(start_server("mongo"), "bench_agg")
    ignore = [] if os.environ.get("BENCH_MONGO_AGG_ENDPOINTS") == "1" else ENDPOINT_DIMENSIONS
    meta = {
        "mongo_url": url,
        "use_mixed_collection": True,
        "track_all_paths": False,
        "threshold_len_tag_list": 1000,
        "aggregation_time": 60,
        "enable_aggregate_self_healing": True,
        "ignore_aggregations": ignore,
    }
    return {"mongo-pump-aggregate": {"type": "mongo-pump-aggregate", "meta": meta}}


def _collection_row(pump_type: str) -> Callable[[Path, Callable[[str], str]], dict[str, Any]]:
    """``mongo-graph`` / ``mongo-mcp`` / ``mongo-mcp-aggregate``: the bench traffic's GraphQL share
    goes to the graph pump; it has no MCP records, so the MCP rows measure the filtering cost."""

    def row(workdir: Path, start_server: Callable[[str], str]) -> dict[str, Any]:
        url = _database(start_server("mongo"), "bench_" + pump_type.replace("-", "_"))
        return {pump_type: {"type": pump_type, "meta": {"mongo_url": url, "collection_name": "tyk_" + pump_type.replace("-", "_")}}}

    return row


ROWS: dict[str, Callable[[Path, Callable[[str], str]], dict[str, Any]]] = {
    "mongo": mongo_row,
    "mongo-pump-aggregate": aggregate_row,
    "mongo-graph": _collection_row("mongo-graph"),
    "mongo-mcp": _collection_row("mongo-mcp"),
}
