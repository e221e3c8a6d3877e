"""Helpers shared by the tests: records, gateway payloads, pump files, running the real CLI."""

from __future__ import annotations

import json
import os
import random
import struct
import subprocess
import sys
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import msgpack
import redis

from pump.decode import msgpack as mp
from pump.decode import protobuf as pb
from pump.record import Record

ROOT = Path(__file__).resolve().parent.parent
BASE_LIST = "analytics-tyk-system-analytics"
T0 = datetime(2024, 1, 15, 13, 45, 12, 123456, tzinfo=UTC)


def make_record(**fields: Any) -> Record:
    """A plausible gateway record; any field can be overridden."""
    values: dict[str, Any] = {
        "method": "GET",
        "host": "api.example.com",
        "path": "/users/42",
        "raw_path": "/users/42",
        "user_agent": "curl/8.4.0",
        "day": 15,
        "month": 1,
        "year": 2024,
        "hour": 13,
        "response_code": 200,
        "api_key": "00000000",
        "timestamp": T0,
        "api_version": "Non Versioned",
        "api_name": "Users API",
        "api_id": "727dad853a8a45f64ab981154d1ffdad",
        "org_id": "5e9d9544a1dcd60001d0ed20",
        "request_time": 12,
        "ip_address": "172.18.0.1",
        "latency_total": 12,
        "latency_upstream": 10,
        "latency_gateway": 2,
        "tags": ["key-00000000"],
        "expire_at": T0,
    }
    values.update(fields)
    return Record(**values)


def numbered(n: int, **fields: Any) -> list[Record]:
    """``n`` distinct records (their paths and nanoseconds differ), in time order."""
    base = int(T0.timestamp()) * 1_000_000_000
    return [make_record(path=f"/items/{i}", raw_path=f"/items/{i}", timestamp_ns=base + i * 1000, **fields) for i in range(n)]


def msgpack_payloads(records: Iterable[Record]) -> list[bytes]:
    return [mp.encode_record(r) for r in records]


def protobuf_payloads(records: Iterable[Record]) -> list[bytes]:
    return [pb.encode_record(r) for r in records]


class RawStr:
    """Bytes to be written as a msgpack *str* (not bin), whatever they hold: how a buggy or
    hostile client sends text that is not UTF-8. ``msgpack.packb`` cannot write this."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"RawStr({self.data!r})"


def pack(value: Any) -> bytes:
    """msgpack of ``value``, with :class:`RawStr` anywhere inside maps and arrays."""
    if isinstance(value, RawStr):
        n = len(value.data)
        if n < 32:
            head = bytes([0xA0 | n])
        elif n < 256:
            head = b"\xd9" + bytes([n])
        elif n < 65536:
            head = b"\xda" + struct.pack(">H", n)
        else:
            head = b"\xdb" + struct.pack(">I", n)
        return head + value.data
    if isinstance(value, dict):
        n = len(value)
        head = bytes([0x80 | n]) if n < 16 else b"\xde" + struct.pack(">H", n)
        return head + b"".join(pack(k) + pack(v) for k, v in value.items())
    if isinstance(value, list):
        n = len(value)
        head = bytes([0x90 | n]) if n < 16 else b"\xdc" + struct.pack(">H", n)
        return head + b"".join(pack(v) for v in value)
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


def client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


def push(url: str, payloads: list[bytes], key: str = BASE_LIST) -> None:
    """RPUSH payloads as a gateway does (pipelined)."""
    r = client(url)
    for i in range(0, len(payloads), 2000):
        r.rpush(key, *payloads[i : i + 2000])
    r.close()


def storage_config(url: str) -> dict[str, Any]:
    u = urlparse(url)
    return {
        "type": "redis",
        "host": u.hostname or "127.0.0.1",
        "port": u.port or 6379,
        "database": int((u.path or "/0").strip("/") or 0),
        "password": u.password or "",
    }


def write_config(path: Path, redis_url: str, pumps: dict[str, Any], **top: Any) -> Path:
    """A Tyk-style JSON pump.conf (YAML is a superset, so the loader reads both)."""
    doc: dict[str, Any] = {
        "analytics_storage_type": "redis",
        "analytics_storage_config": storage_config(redis_url),
        "purge_delay": 1,
        "telemetry": {"health_enabled": False, "shutdown_timeout": 10},
        "pumps": pumps,
    }
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key] = {**doc[key], **value}
        else:
            doc[key] = value
    path.write_text(json.dumps(doc, indent=2))
    return path


def pump_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "pump", *args]


def run_pump(*args: str, timeout: float = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real CLI (``python -m pump …``) to completion."""
    return subprocess.run(pump_cmd(*args), cwd=ROOT, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


def run_once(config: Path, timeout: float = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = run_pump("run", "--once", "--config", str(config), timeout=timeout, env=env)
    return proc


def pump_keys(url: str) -> list[str]:
    """Every key the pump itself created (processing lists, leases, backlogs...), sorted — except
    the idempotency guards (``…:g:<id>``), small keys that expire on their own within an hour."""
    r = client(url)
    try:
        keys = [k.decode() for k in r.keys("*") if b":pump:" in k or k.startswith(b"pump:")]
        return sorted(k for k in keys if ":g:" not in k)
    finally:
        r.close()


def list_lengths(url: str) -> dict[str, int]:
    r = client(url)
    try:
        return {k.decode(): int(r.llen(k)) for k in r.keys(f"{BASE_LIST}*") if r.type(k) == b"list"}
    finally:
        r.close()


def random_aggregate_rows(rng: random.Random, ids: list[str], dimension: str = "apiid") -> list[Any]:
    """Random ``tyk_aggregated`` rows (0 hits included) for checking a database's upsert against
    the reference merge (``pump.aggregate.sql_rows.merge_row``)."""
    from pump.aggregate.sql_rows import SQL_COLUMNS, AggregateRow

    rows = []
    for rid in ids:
        h = rng.choice([0, 0, 1, 2, 7, 1000])
        tl, tu, tr = rng.randint(0, 10**6), rng.randint(0, 10**6), rng.random() * 1e5
        values: dict[str, Any] = {c: rng.randint(0, 50) for c in SQL_COLUMNS if c.startswith("code_")}
        values.update(
            id=rid, org_id="o", dimension=dimension, dimension_value=rid, timestamp=1546300800,
            counter_hits=h, counter_success=rng.randint(0, h), counter_error=rng.randint(0, h),
            counter_request_time=tr / h if h else 0.0, counter_total_request_time=tr,
            counter_identifier=rid, counter_human_identifier=f"name {rng.randint(0, 9)}",
            counter_last_time=T0 + timedelta(seconds=rng.randint(0, 10**6), microseconds=rng.randint(0, 999999)),
            counter_open_connections=rng.randint(0, 9), counter_closed_connections=rng.randint(0, 9),
            counter_bytes_in=rng.randint(0, 10**9), counter_bytes_out=rng.randint(0, 10**9),
            counter_max_upstream_latency=rng.randint(0, 10**5), counter_min_upstream_latency=rng.randint(0, 10**5),
            counter_total_upstream_latency=tu, counter_upstream_latency=tu / h if h else 0.0,
            counter_max_latency=rng.randint(0, 10**5), counter_min_latency=rng.randint(0, 10**5),
            counter_total_latency=tl, counter_latency=tl / h if h else 0.0,
        )  # fmt: skip
        rows.append(AggregateRow(**values))
    return rows
