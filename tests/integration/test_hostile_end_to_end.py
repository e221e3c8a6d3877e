"""Hostile records end to end (issue 9, "Tests that keep it so"): one pump file with CSV, SQLite,
PostgreSQL, Mongo (raw) and mongo-pump-selective on real servers (Redis, PostgreSQL, FerretDB);
2,000 good records mixed with a few hundred hostile ones — payloads that are not records at all,
hostile org ids, NaN/infinite coordinates, integers at and beyond Go's int64, NUL bytes,
newlines, invalid UTF-8, SQL-looking text, city names whose keys Mongo refuses.

The pump must not die, every good record must be in every sink exactly once (ids and counts),
and every record a sink cannot take must be in that pump's dead-letter list with a reason, every
payload that is not a record in the ``undecodable`` list — with exact counts, nothing lost.
"""

from __future__ import annotations

import csv
import math
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pump.decode import msgpack as mp
from pump.delivery.deadletter import Entry
from pump.errors import DecodeError
from pump.record import Record
from pump.sinks.mongo.documents import object_id
from tests.helpers import T0, RawStr, client, list_lengths, make_record, pack, pump_cmd, push, run_once, write_config
from tests.integration import sql_helpers
from tests.integration.sql_helpers import Db

pytestmark = pytest.mark.integration
pg_dsn = sql_helpers.pg_dsn  # fixture: a fresh PostgreSQL database

GOOD = 2000
BASE_NS = int(T0.timestamp()) * 1_000_000_000
INT64_MAX = (1 << 63) - 1
HOSTILE_ORGS = ["a$b", "x\x00y", "../../etc", "o" * 1500]


def go_map(path: str, i: int, **fields: Any) -> dict[str, Any]:
    """A Go-keyed gateway map with a unique path and time, some fields overridden."""
    return {**mp.go_fields(make_record(path=path, raw_path=path, timestamp_ns=BASE_NS + i * 1000)), **fields}


def geo(lat: float = 48.85, lon: float = 2.35, names: dict[str, str] | None = None) -> dict[str, Any]:
    location = {"Latitude": lat, "Longitude": lon, "TimeZone": "Europe/Paris"}
    return {"Country": {"ISOCode": "FR"}, "City": {"GeoNameID": 2988507, "Names": names}, "Location": location}


#: Non-finite coordinates, and city names whose keys Mongo refuses ('.', '$', NUL).
COORDINATES = ((math.nan, 2.0), (1.0, math.nan), (math.inf, -math.inf), (math.nan, math.nan))
NAMES = ({"a.b": "x"}, {"$x": "y"}, {"k\x00": "v"})
SQL_TEXT = "'; DROP TABLE tyk_analytics; --"


def good_payloads() -> list[bytes]:
    return [pack(go_map(f"/good/{i}", i, OrgID=("orgA", "orgB")[i % 2])) for i in range(GOOD)]


def hostile_payloads() -> dict[str, list[bytes]]:
    """Decodable records that hold hostile values, by kind."""
    n = iter(range(GOOD, GOOD + 10_000))
    kinds: dict[str, list[dict[str, Any]]] = {
        "org": [go_map(f"/hostile/org/{k}", next(n), OrgID=org) for org in HOSTILE_ORGS for k in range(15)],
        "geo": [go_map(f"/hostile/geo/{k}", next(n), Geo=geo(*c)) for k in range(10) for c in COORDINATES],
        "int": [
            go_map(f"/hostile/int/{k}", next(n), ContentLength=INT64_MAX, RequestTime=-(1 << 63), Day=-1,
                   Latency={"Total": INT64_MAX, "Upstream": -(1 << 63), "Gateway": 0}, Network={"BytesIn": INT64_MAX})
            for k in range(30)
        ],
        "nul": [go_map(f"/hostile/nul/{k}/a\x00b", next(n), UserAgent="x\x00y", Tags=["t\x00"]) for k in range(30)],
        "newline": [go_map(f"/hostile/nl/{k}/a\nb\r\nc", next(n), APIName="line1\nline2", Alias="\r") for k in range(30)],
        "utf8": [
            go_map(f"/hostile/utf8/{k}", next(n), RawPath=RawStr(b"/caf\xe9/%d" % k), UserAgent=RawStr(b"\xff\xfe"),
                   APIName=RawStr(b"\xc3\x28"))
            for k in range(30)
        ],
        "sql": [
            go_map(f"/hostile/sql/{k}/' OR '1'='1", next(n), APIName=SQL_TEXT, Tags=["'); DELETE FROM x; --"], APIKey="\\.")
            for k in range(20)
        ],
        "names": [go_map(f"/hostile/names/{k}", next(n), Geo=geo(names=names)) for k in range(10) for names in NAMES],
    }  # fmt: skip
    return {kind: [pack(m) for m in maps] for kind, maps in kinds.items()}


def undecodable_payloads() -> dict[str, list[bytes]]:
    """Payloads that are not Tyk records, by kind: each must be dead-lettered as undecodable."""
    whole = pack(go_map("/x", 0))
    return {
        "garbage": [b"\xc1" + bytes([k]) * k for k in range(20)],  # 0xc1 is never valid msgpack
        "truncated": [whole[: 10 + 7 * k] for k in range(20)],
        "not_a_map": [pack([k, "GET", "/"]) for k in range(5)],
        "no_record_keys": [pack({"Foo": k}) for k in range(5)],
        "int_overflow": [pack(go_map(f"/bad/int/{k}", k, ContentLength=(1 << 64) - 1 - k)) for k in range(10)],
        "graphql": [pack(go_map(f"/bad/gql/{k}", k, GraphQLStats={"IsGraphQL": "yes", "OperationType": k})) for k in range(10)],
        "time": [pack(go_map(f"/bad/time/{k}", k, TimeStamp=[253402300800 + k, 0])) for k in range(10)],
    }


def decoded(payloads: list[bytes]) -> list[Record]:
    return [mp.decode_record(p) for p in payloads]


def csv_rows(directory: Path) -> list[list[str]]:
    rows: list[list[str]] = []
    for path in sorted(directory.glob("*.csv")):
        with path.open(newline="", encoding="utf-8") as fh:
            body = list(csv.reader(fh))
        assert body[0][0] == "Method", "every file starts with Tyk's header"
        rows.extend(body[1:])
    return rows


def dead_letters(url: str, pump: str) -> list[Entry]:
    r = client(url)
    try:
        return [Entry.decode(e) for e in r.lrange(f"pump:deadletter:{pump}", 0, -1)]
    finally:
        r.close()


def test_hostile_records_end_to_end_into_csv_sqlite_postgres_and_ferretdb(
    tmp_path: Path,
    redis_url: str,
    pg_dsn: str,
    db_url: str,
    db: Any,
) -> None:
    good = good_payloads()
    hostile = hostile_payloads()
    broken = undecodable_payloads()
    for payloads in broken.values():
        for p in payloads:
            with pytest.raises(DecodeError):
                mp.decode_record(p)
    bad = [p for ps in hostile.values() for p in ps]
    undecodable = [p for ps in broken.values() for p in ps]
    # Interleave so that every claimed batch mixes good, hostile and undecodable payloads.
    stream: list[bytes] = []
    extra = bad + undecodable
    step = GOOD // len(extra) + 1
    for i, p in enumerate(good):
        stream.append(p)
        if i % step == 0 and extra:
            stream.append(extra.pop(0))
    stream.extend(extra)
    assert len(stream) == GOOD + len(bad) + len(undecodable) == len(set(stream))
    push(redis_url, stream)

    sqlite_file = tmp_path / "pump.sqlite"
    config = write_config(
        tmp_path / "pump.conf", redis_url,
        {
            "csv": {"type": "csv", "meta": {"csv_dir": str(tmp_path / "csv")}},
            "sqlite": {"type": "sql", "meta": {"type": "sqlite", "connection_string": str(sqlite_file)}},
            "postgres": {"type": "sql", "meta": {"type": "postgres", "connection_string": pg_dsn}},
            "mongo": {"type": "mongo", "meta": {"mongo_url": db_url, "collection_name": "tyk_analytics"}},
            "selective": {"type": "mongo-pump-selective", "meta": {"mongo_url": db_url}},
        },
        purge_chunk=400,
    )  # fmt: skip
    proc = run_once(config, timeout=240)  # a stalled pump (a record retried forever) fails here
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]

    # Nothing is left in Redis but the dead letters: every payload was written or dead-lettered.
    assert list_lengths(redis_url) == {}
    good_records, bad_records = decoded(good), decoded(bad)
    every = good_records + bad_records
    by_kind = {kind: decoded(ps) for kind, ps in hostile.items()}

    # The undecodable list holds exactly the payloads that are not records, each with a reason.
    dead = dead_letters(redis_url, "undecodable")
    assert sorted(e.payload for e in dead) == sorted(undecodable)
    assert all(e.reason for e in dead), [e.reason for e in dead if not e.reason]

    # CSV takes everything decodable, as Go's encoding/csv would write it: 42 columns a row.
    rows = csv_rows(tmp_path / "csv")
    assert all(len(row) == 42 for row in rows)
    assert Counter(row[2] for row in rows) == Counter(r.path for r in every)
    assert dead_letters(redis_url, "csv") == []

    # SQLite and PostgreSQL take everything decodable too (NUL becomes U+FFFD), once each.
    for name, sql in (("sqlite", Db("sqlite", str(sqlite_file))), ("postgres", Db("postgres", pg_dsn))):
        ids = [row[0] for row in sql.rows("SELECT id FROM tyk_analytics")]
        assert len(ids) == len(every) and set(ids) == {r.record_id for r in every}, name
        assert dead_letters(redis_url, name) == [], name
        big = sql.rows("SELECT contentlength, requesttime, latency_total FROM tyk_analytics WHERE path LIKE ?", ("/hostile/int/%",))
        assert set(big) == {(INT64_MAX, -(1 << 63), INT64_MAX)}, name
    assert Db("postgres", pg_dsn).count("tyk_analytics") == len(every)  # the SQL text did not run

    # Mongo (FerretDB): what it refuses is dead-lettered with the reason — city names with a key
    # holding '.', '$' (the server) or NUL (the driver) — and the rest is stored once: NUL in
    # strings, invalid UTF-8 as U+FFFD, and NaN/infinite coordinates stored as 0.
    refused_raw = {r.record_id for r in by_kind["names"]}
    expected_raw = {object_id(r.record_id, r.timestamp_ns) for r in every if r.record_id not in refused_raw}
    stored = [d["_id"] for d in db.tyk_analytics.find({}, {"_id": 1})]
    assert len(stored) == len(expected_raw) and set(stored) == expected_raw
    assert {object_id(r.record_id, r.timestamp_ns) for r in good_records} <= set(stored)
    located = db.tyk_analytics.find({"path": {"$regex": "^/hostile/geo/"}})
    coords = {(d["geo"]["location"]["latitude"], d["geo"]["location"]["longitude"]) for d in located}
    assert coords == {(0.0, 2.0), (1.0, 0.0), (0.0, 0.0)}
    raw_dead = dead_letters(redis_url, "mongo")
    assert sorted(e.record_id for e in raw_dead) == sorted(refused_raw)
    assert all(e.reason for e in raw_dead)

    # mongo-pump-selective: one collection per org; hostile org ids name no valid collection.
    refused_selective = {r.record_id for r in by_kind["org"]} | refused_raw
    orgs = sorted({r.org_id for r in every} - set(HOSTILE_ORGS))
    assert len(orgs) == 3  # orgA, orgB, and make_record's org of the other hostile records
    for org in orgs:
        ids = [d["_id"] for d in db[f"z_tyk_analyticz_{org}"].find({}, {"_id": 1})]
        assert len(ids) == len(set(ids))
        wanted = {object_id(r.record_id, r.timestamp_ns) for r in every if r.org_id == org and r.record_id not in refused_selective}
        assert set(ids) == wanted, org
    assert sorted(n for n in db.list_collection_names() if n.startswith("z_")) == [f"z_tyk_analyticz_{org}" for org in orgs]
    sel_dead = dead_letters(redis_url, "selective")
    assert sorted(e.record_id for e in sel_dead) == sorted(refused_selective)
    assert all("invalid collection name" in e.reason for e in sel_dead if e.record_id in {r.record_id for r in by_kind["org"]})
    assert all(e.reason for e in sel_dead)

    # The operator's view: `pump deadletter list` names each list with its exact count.
    listing = subprocess.run(pump_cmd("deadletter", "list", "--config", str(config)), capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0, listing.stderr
    for pump, count in (("undecodable", len(undecodable)), ("mongo", len(refused_raw)), ("selective", len(refused_selective))):
        assert f"pump:deadletter:{pump}: {count} entries" in listing.stdout, listing.stdout[:2000]
