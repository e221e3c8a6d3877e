"""Conditions and masking end to end (issue 13): records in a real Redis, ``pump run --once`` (the
real CLI), rows read back from real PostgreSQL databases and SQLite files.

Two databases: ``plain`` gets every record as the gateway wrote it; ``masked`` gets, from a raw and
an aggregate pump with ``mask`` and ``conditions``, only the routed records — and no original IP,
API key, alias or Authorization value may appear anywhere in it."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pump.record import Record
from tests import servers
from tests.helpers import msgpack_payloads, push, run_once, write_config
from tests.integration.sql_helpers import Db, database_url

pytestmark = pytest.mark.integration

T0 = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)


def raw_request(token: str) -> str:
    text = f"GET /pay HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer {token}\r\nAccept: */*\r\n\r\n"
    return base64.b64encode(text.encode()).decode()


#: (api_id, response_code, ip, api_key, alias): the routed ones are api "pay" or fault/throttled.
ROWS = [
    ("pay", 200, "192.168.1.98", "5e9d9544aaaa0001", "john.doe@gmail.com"),  # routed: api pay
    ("shop", 200, "10.20.30.40", "5e9d9544bbbb0002", "ann@example.org"),  # not routed
    ("shop", 503, "10.20.31.41", "5e9d9544cccc0003", "bob@example.org"),  # routed: fault
    ("shop", 429, "172.16.5.6", "5e9d9544dddd0004", "eve@example.org"),  # routed: throttled
    ("shop", 404, "172.16.7.8", "5e9d9544eeee0005", "joe@example.org"),  # not routed (a refusal is a request)
    ("pay", 502, "192.168.2.99", "5e9d9544ffff0006", "kim@example.org"),  # routed: both
]
ROUTED = {0, 2, 3, 5}


def records() -> list[Record]:
    return [
        Record(
            org_id="org1", api_id=api, api_name=api, response_code=code, ip_address=ip, api_key=key, alias=alias,
            path=f"/p/{i}", method="GET", timestamp=T0 + timedelta(seconds=i), request_time=10 + i,
            tags=[f"key-{key}", "web"], raw_request=raw_request(f"tok-{key}"), user_agent="curl/8.4.0",
        )
        for i, (api, code, ip, key, alias) in enumerate(ROWS)
    ]  # fmt: skip


MASK = {
    "fields": {"ip_address": "IPV4", "api_key": "OBFUSCATE", "alias": "EMAIL"},
    "request_headers": ["Authorization"],
}
CONDITIONS = {
    "type": "or",
    "rules": [
        {"variable": "api_id", "operator": "equals", "value": "pay"},
        {"variable": "event_kind", "operator": "in", "value": ["fault", "throttled"]},
    ],
}


@pytest.fixture(params=["postgres", "sqlite"])
def dbs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Db, Db]]:
    """(plain, masked): two fresh PostgreSQL databases, or two SQLite files."""
    if request.param == "sqlite":
        yield Db("sqlite", str(tmp_path / "plain.sqlite")), Db("sqlite", str(tmp_path / "masked.sqlite"))
        return
    server: servers.Server = request.getfixturevalue("postgres_server")
    names = ["pump_" + uuid.uuid4().hex[:12] for _ in range(2)]
    with psycopg.connect(server.url, autocommit=True) as conn:
        for name in names:
            conn.execute(f'CREATE DATABASE "{name}"'.encode())
    try:
        yield Db("postgres", database_url(server.url, names[0])), Db("postgres", database_url(server.url, names[1]))
    finally:
        with psycopg.connect(server.url, autocommit=True) as conn:
            for name in names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def everything_in(db: Db, table: str) -> str:
    """Every value of every row, as one text to search."""
    return "\n".join(repr(v) for row in db.dicts(f'SELECT * FROM "{table}"') for v in row.values())


def test_conditions_route_and_masked_values_never_reach_the_masked_tables(tmp_path: Path, redis_url: str, dbs: tuple[Db, Db]) -> None:
    plain, masked = dbs
    pumps: dict[str, Any] = {
        "plain": {"type": "sql", "meta": plain.meta},
        "masked": {"type": "sql", "meta": masked.meta, "mask": MASK, "conditions": CONDITIONS},
        "masked_agg": {
            "type": "sql_aggregate",
            "meta": masked.meta,
            "mask": MASK,
            "conditions": CONDITIONS,
            "extra_dimensions": ["eventkinds"],
        },
    }
    push(redis_url, msgpack_payloads(records()))
    proc = run_once(write_config(tmp_path / "pump.json", redis_url, pumps))
    assert proc.returncode == 0, proc.stderr[-4000:]

    # The unmasked pump has every record with its original values.
    rows = plain.dicts('SELECT apiid, responsecode, ipaddress, apikey, alias, rawrequest FROM "tyk_analytics" ORDER BY path')
    assert [(r["apiid"], r["responsecode"], r["ipaddress"], r["apikey"], r["alias"]) for r in rows] == ROWS
    assert base64.b64decode(rows[0]["rawrequest"]).decode().find("Bearer tok-5e9d9544aaaa0001") > 0

    # The masked pump has the routed records only, masked.
    rows = masked.dicts('SELECT apiid, responsecode, ipaddress, apikey, alias, rawrequest, tags FROM "tyk_analytics" ORDER BY path')
    assert [(r["apiid"], r["responsecode"], r["ipaddress"], r["apikey"], r["alias"]) for r in rows] == [
        ("pay", 200, "192.168.***.98", "****0001", "*****@gmail.com"),
        ("shop", 503, "10.20.***.41", "****0003", "*****@example.org"),
        ("shop", 429, "172.16.***.6", "****0004", "*****@example.org"),
        ("pay", 502, "192.168.***.99", "****0006", "*****@example.org"),
    ]
    assert all("Authorization: *****\r\n" in base64.b64decode(r["rawrequest"]).decode() for r in rows)

    # Nothing original anywhere in the masked database: raw rows and aggregate rows alike.
    secrets = [s for i, row in enumerate(ROWS) for s in (row[2], row[3], row[4], f"tok-{row[3]}")]
    texts = {table: everything_in(masked, table) for table in ("tyk_analytics", "tyk_aggregated")}
    for table, text in texts.items():
        leaked = [s for s in secrets if s in text]
        assert not leaked, f"{table} holds original values {leaked}"
    for decoded in (base64.b64decode(r["rawrequest"]).decode() for r in rows):
        assert not [s for s in secrets if s in decoded]

    # The aggregate counted the routed records under masked keys, with the event kinds beside.
    agg = {
        (r["dimension"], r["dimension_value"]): r["counter_hits"]
        for r in masked.dicts('SELECT dimension, dimension_value, counter_hits FROM "tyk_aggregated"')
    }
    assert agg[("", "total")] == 4
    assert {v: n for (d, v), n in agg.items() if d == "apikeys"} == {"****0001": 1, "****0003": 1, "****0004": 1, "****0006": 1}
    assert {v: n for (d, v), n in agg.items() if d == "eventkinds"} == {"request": 1, "fault": 2, "throttled": 1}
    assert {v: n for (d, v), n in agg.items() if d == "apiid"} == {"pay": 2, "shop": 2}
