"""``mongo-pump-aggregate`` against a real Mongo-wire server: Tyk's golden cases (tyk-pump.md §7.2
cases 6, 7, 8, 9, 13, 14) through the server, agreement with the pure-Python simulation of the
two-step write (tests/unit/aggregate/mongo_sim.py), exactly-once redelivery and self-healing."""

from __future__ import annotations

import copy
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bson
import bson.json_util
import pytest
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient

from pump.aggregate import aggregate_records, as_time_update, collection_names, discard_aggregations, hour_floor
from pump.aggregate.model import Counter, OrgAggregate, TimeID
from pump.aggregate.mongo_update import MIXED_COLLECTION
from pump.decode.msgpack import decode_record
from pump.errors import BatchDataError, RetriableError
from pump.record import Record
from pump.sinks.base import SinkBatch
from pump.sinks.mongo.aggregate import Meta, MongoAggregateSink
from pump.sinks.mongo.upsert import LAST_FIELD, LEDGER_FIELD, AggregateWriter
from tests import servers
from tests.integration.mongo_helpers import database_url
from tests.unit.aggregate.mongo_sim import FakeCollection, apply_update, write_aggregate

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "tyk"
T = datetime(2023, 4, 4, 10, 0, tzinfo=UTC)


async def agg_sink(open_sinks: list[Any], url: str, **meta: Any) -> MongoAggregateSink:
    sink = MongoAggregateSink("agg", Meta.model_validate({"mongo_url": url, **meta}), timeout=20)
    open_sinks.append(sink)
    await sink.start()
    return sink


def _ms(value: datetime) -> datetime:
    value = value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def norm(value: Any) -> Any:
    """A document as comparable data: no ledger fields or ``_id``, times in UTC at BSON's
    millisecond precision, ``lists.*`` arrays in a fixed order (their order follows the order of
    fields in the stored document, which servers are free to choose)."""
    if isinstance(value, datetime):
        return _ms(value)
    if isinstance(value, dict):
        out = {k: norm(v) for k, v in value.items() if k not in ("_id", LEDGER_FIELD, LAST_FIELD)}
        if isinstance(out.get("lists"), dict):
            out["lists"] = {k: _sorted(v) for k, v in out["lists"].items()}
        return out
    if isinstance(value, list):
        return [norm(v) for v in value]
    return value


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(v) for k, v in value.items()}
    if isinstance(value, list):
        return sorted(value, key=lambda e: json.dumps(e, sort_keys=True, default=str))
    return value


def canonical(collection: Any) -> list[dict[str, Any]]:
    """Every stored document with its BSON types visible, ledger included (for exact equality)."""
    raw = collection.with_options(codec_options=collection.codec_options.with_options(document_class=RawBSONDocument))
    docs = [json.loads(bson.json_util.dumps(bson.decode(d.raw), json_options=bson.json_util.CANONICAL_JSON_OPTIONS)) for d in raw.find()]
    return sorted(docs, key=lambda d: json.dumps(d["timestamp"]))


def snapshot(db: Any) -> dict[str, list[dict[str, Any]]]:
    return {name: canonical(db[name]) for name in sorted(db.list_collection_names())}


def simulate(aggregates: list[OrgAggregate], mixed: bool = False) -> dict[str, FakeCollection]:
    """The pure-Python two-step write of the same aggregates."""
    collections: dict[str, FakeCollection] = {}
    for agg in aggregates:
        for name in collection_names(agg.org_id, mixed):
            write_aggregate(collections.setdefault(name, FakeCollection()), agg)
    return collections


def assert_matches_simulation(db: Any, sim: dict[str, FakeCollection]) -> None:
    for name, fake in sim.items():
        expected = sorted((norm(d) for d in fake.docs.values()), key=lambda d: d["timestamp"])
        stored = sorted((norm(d) for d in db[name].find()), key=lambda d: d["timestamp"])
        assert stored == expected, name


def fixture_records(case_name: str) -> tuple[dict[str, Any], list[Record]]:
    cases = json.loads((FIXTURES / "aggregates.json").read_text())["cases"]
    case = next(c for c in cases if c["name"] == case_name)
    return case, [decode_record(bytes.fromhex(r["msgpack_hex"])) for r in case["records"]]


def _agg(org: str = "testorg", **dims: Any) -> OrgAggregate:
    return OrgAggregate(org_id=org, timestamp=T, expire_at=T, time_id=TimeID.of(T), last_time=T, **dims)


# --------------------------------------------------------------------------- case 6


def _counter6(**over: Any) -> Counter:
    base: dict[str, Any] = dict(
        hits=2, success=1, error_total=0, total_request_time=100.0, total_upstream_latency=20, max_latency=100,
        max_upstream_latency=110, min_upstream_latency=10, min_latency=20, total_latency=150, error_map={"200": 1}, last_time=T,
    )  # fmt: skip
    base.update(over)
    return Counter(**base)


async def test_case06_counter_update_through_server(db_url: str, db: Any) -> None:
    writer = AggregateWriter()
    agg = _agg(apiid={"test": _counter6(success=0, error_total=2, error_map={"500": 2}, identifier="test")}, total=_counter6())
    client: Any = _async_client(db_url)
    try:
        await writer.write(client.get_default_database()["c6"], agg, "b6")
    finally:
        await client.close()
    (doc,) = canonical(db.c6)
    total = doc["total"]
    assert total["hits"] == {"$numberInt": "2"} and total["success"] == {"$numberInt": "1"}
    assert total["errortotal"] == {"$numberInt": "0"} and total["errormap"] == {"200": {"$numberInt": "1"}}
    assert total["totalrequesttime"] == {"$numberDouble": "100.0"}
    assert total["totallatency"] == {"$numberLong": "150"} and total["totalupstreamlatency"] == {"$numberLong": "20"}
    assert (total["maxlatency"], total["maxupstreamlatency"]) == ({"$numberLong": "100"}, {"$numberLong": "110"})
    assert (total["minlatency"], total["minupstreamlatency"]) == ({"$numberLong": "20"}, {"$numberLong": "10"})
    for key in ("bytesin", "bytesout", "openconnections", "closedconnections"):
        assert total[key] == {"$numberLong": "0"}
    assert (total["identifier"], total["humanidentifier"]) == ("", "")
    errors_only = doc["apiid"]["test"]
    assert "minlatency" not in errors_only and "minupstreamlatency" not in errors_only  # no $min for all-error counters
    assert errors_only["errormap"] == {"500": {"$numberInt": "2"}} and errors_only["identifier"] == "test"
    assert_matches_simulation(db, {"c6": simulate([agg])[f"z_tyk_analyticz_aggregate_{agg.org_id}"]})


def _async_client(url: str) -> Any:
    from pymongo import AsyncMongoClient

    return AsyncMongoClient(url, tz_aware=True)


# --------------------------------------------------------------------------- case 7


def _version() -> Counter:
    return Counter(hits=1, success=1, total_latency=100, total_upstream_latency=200, total_request_time=200, min_upstream_latency=20,
                   min_latency=10, max_upstream_latency=100, max_latency=100, last_time=T)  # fmt: skip


def _case7_aggregates() -> list[OrgAggregate]:
    versions = _agg(
        "org7a",
        versions={"v1": _version(), "v2": _version()},
        total=Counter(hits=2, success=2, total_latency=200, total_request_time=200, max_upstream_latency=100, max_latency=100,
                      min_upstream_latency=20, min_latency=10, total_upstream_latency=400, last_time=T),
    )  # fmt: skip
    errors = _agg(
        "org7b",
        apiid={
            "api1": Counter(hits=3, error_total=3, total_latency=100, total_upstream_latency=200, total_request_time=200,
                            min_upstream_latency=20, min_latency=10, max_upstream_latency=100, max_latency=100,
                            error_map={"404": 1, "500": 2}, last_time=T),
            "api2": _version(),
        },
        total=Counter(hits=4, success=1, error_total=3, total_latency=200, total_request_time=200, max_upstream_latency=100,
                      max_latency=100, min_upstream_latency=20, min_latency=10, total_upstream_latency=400,
                      error_map={"404": 1, "500": 2}, last_time=T),
    )  # fmt: skip
    return [versions, errors]


async def test_case07_as_change_through_server(db_url: str, db: Any) -> None:
    aggregates = _case7_aggregates()
    writer = AggregateWriter()
    client = _async_client(db_url)
    try:
        for agg in aggregates:
            for name in collection_names(agg.org_id, True):
                await writer.write(client.get_default_database()[name], agg, "b7")
    finally:
        await client.close()
    assert_matches_simulation(db, simulate(aggregates, mixed=True))
    a = db.z_tyk_analyticz_aggregate_org7a.find_one()
    assert a["timestamp"] == T and a["timeid"] == {"year": 2023, "month": 4, "day": 4, "hour": 10}
    assert a["versions"]["v1"]["hits"] == 1 and a["versions"]["v2"]["minupstreamlatency"] == 20
    assert a["total"]["totalupstreamlatency"] == 400 and a["expireAt"] == T and a["lasttime"] == T
    b = db.z_tyk_analyticz_aggregate_org7b.find_one()
    assert "minlatency" not in b["apiid"]["api1"] and b["apiid"]["api2"]["minlatency"] == 10
    assert b["apiid"]["api1"]["errorlist"] == [{"code": "404", "count": 1}, {"code": "500", "count": 2}]
    assert db[MIXED_COLLECTION].count_documents({}) == 2


# --------------------------------------------------------------------------- case 8


async def test_case08_as_time_update_through_server(db_url: str, db: Any) -> None:
    def stored_counter() -> dict[str, Any]:
        return {"hits": 3, "success": 0, "errortotal": 3, "totallatency": 300, "totalupstreamlatency": 600, "lasttime": T,
                "errormap": {"404": 1, "500": 2}}  # fmt: skip

    doc: dict[str, Any] = {
        "orgid": "testorg",
        "timestamp": T,
        "keyendpoints": {"apikey1": {"/get": stored_counter()}},
        "oauthendpoints": {"oauthid1": {"/get": stored_counter()}},
        "apiendpoints": {"/get": stored_counter()},
        "total": {**stored_counter(), "totalrequesttime": 300.0, "minlatency": 10, "maxlatency": 100},
        LEDGER_FIELD: ["b8"],
        LAST_FIELD: "b8",
    }
    db.c8.insert_one(copy.deepcopy(doc))
    client = _async_client(db_url)
    try:
        collection = client.get_default_database()["c8"]
        await AggregateWriter()._step2(collection, await collection.find_one(), ["b8"])
    finally:
        await client.close()
    stored = db.c8.find_one()
    errorlist = [{"code": "404", "count": 1}, {"code": "500", "count": 2}]
    for node in (stored["apiendpoints"]["/get"], stored["keyendpoints"]["apikey1"]["/get"], stored["oauthendpoints"]["oauthid1"]["/get"]):
        assert (node["latency"], node["requesttime"], node["upstreamlatency"], node["errorlist"]) == (100.0, 0.0, 200.0, errorlist)
    assert [e["latency"] for e in stored["lists"]["apiendpoints"]] == [100.0]
    assert [e["upstreamlatency"] for e in stored["lists"]["keyendpoints"]["apikey1"]] == [200.0]
    assert len(stored["lists"]["oauthendpoints"]["oauthid1"]) == 1
    for empty in ("apiid", "apikeys", "endpoints", "errors", "geo", "oauthids", "tags", "versions"):
        assert stored["lists"][empty] == []
    assert (stored["total"]["requesttime"], stored["total"]["latency"]) == (100.0, 100.0)
    assert norm(stored) == norm(apply_update(copy.deepcopy(doc), as_time_update(doc)))


# --------------------------------------------------------------------------- case 9


async def test_case09_averages_and_zero_hits_through_server(db_url: str, db: Any, open_sinks: list[Any]) -> None:
    client = _async_client(db_url)
    try:
        await AggregateWriter().write(
            client.get_default_database()["c9"],
            _agg(apiid={"a": Counter(hits=2, success=2, total_latency=100, total_upstream_latency=200, last_time=T)}),
            "b9",
        )
    finally:
        await client.close()
    stored = db.c9.find_one()
    assert (stored["apiid"]["a"]["latency"], stored["apiid"]["a"]["upstreamlatency"]) == (50.0, 100.0)
    assert (stored["total"]["latency"], stored["total"]["upstreamlatency"], stored["total"]["requesttime"]) == (0.0, 0.0, 0.0)
    # Only network records (ResponseCode -1): no hits, so every average is 0 rather than a division by zero.
    sink = await agg_sink(open_sinks, db_url)
    network = [
        Record(
            org_id="net",
            api_id="api1",
            response_code=-1,
            timestamp=T,
            network_bytes_in=10,
            network_bytes_out=20,
            network_open_connections=3,
        )
    ]
    await sink.write(SinkBatch("n1", network))
    total = db.z_tyk_analyticz_aggregate_net.find_one()["total"]
    assert total["hits"] == 0 and (total["latency"], total["upstreamlatency"], total["requesttime"]) == (0.0, 0.0, 0.0)
    assert (total["bytesin"], total["bytesout"], total["openconnections"]) == (10, 20, 3)


# --------------------------------------------------------------------------- case 13


async def test_case13_ignore_aggregations_across_pumps(db_url: str, db: Any, open_sinks: list[Any]) -> None:
    now = datetime(2024, 2, 3, 14, 25, 10, tzinfo=UTC)
    keys1 = [Record(api_id="api1", org_id="123", timestamp=now, api_key="apikey1", request_time=100, response_code=200) for _ in range(2)]
    keys2 = [Record(api_id="api2", org_id="123", timestamp=now, api_key="apikey2", request_time=200, response_code=200) for _ in range(2)]
    pump_a = await agg_sink(open_sinks, db_url, use_mixed_collection=True, ignore_aggregations=["apikeys"])
    pump_b = await agg_sink(open_sinks, db_url, use_mixed_collection=True)
    await pump_a.write(SinkBatch("a1", keys1))
    await pump_b.write(SinkBatch("b1", keys2))
    await pump_a.write(SinkBatch("a2", keys1))
    for name in ("z_tyk_analyticz_aggregate_123", MIXED_COLLECTION):
        (doc,) = list(db[name].find())
        assert doc["timestamp"] == datetime(2024, 2, 3, 14, 0, tzinfo=UTC)
        assert doc["total"]["hits"] == 6 and doc["total"]["totalrequesttime"] == 800.0
        assert doc["total"]["requesttime"] == pytest.approx(800.0 / 6.0)
        assert list(doc["apikeys"]) == ["apikey2"] and doc["apikeys"]["apikey2"]["hits"] == 2
        assert [(e["identifier"], e["hits"]) for e in doc["lists"]["apikeys"]] == [("apikey2", 2)]
        assert doc["apiid"]["api1"]["hits"] == 4


# --------------------------------------------------------------------------- case 14


@pytest.mark.parametrize(("aggregation_time", "docs"), [(60, 3), (30, 4), (15, 6), (7, 4), (3, 8), (1, 10)])
async def test_case14_aggregation_time_document_count(
    db_url: str, db: Any, open_sinks: list[Any], aggregation_time: int, docs: int
) -> None:
    sink = await agg_sink(open_sinks, db_url, aggregation_time=aggregation_time, ignore_aggregations=["apikeys"])
    now = datetime(2024, 3, 1, 10, 17, 23, 500000, tzinfo=UTC)
    n = 0
    for _ in range(docs):
        record = Record(api_id="api1", org_id="123", timestamp=now, api_key="apikey1", response_code=200)
        for _ in range(aggregation_time):
            n += 1
            await sink.write(SinkBatch(f"b{n}", [record]))
        now += timedelta(minutes=aggregation_time)
    stored = list(db.z_tyk_analyticz_aggregate_123.find())
    assert len(stored) == docs
    assert sum(d["total"]["hits"] for d in stored) == docs * aggregation_time
    assert all(d["total"]["hits"] == aggregation_time for d in stored)


# --------------------------------------------------------------------------- vs. simulation


@pytest.mark.parametrize(
    "case_name", ["main_track_all_paths_true", "two_orgs_and_skipped_records", "dotted_ids_keys_oauth_paths_tags", "response_code_minus_1"]
)
async def test_real_server_matches_simulation(db_url: str, db: Any, open_sinks: list[Any], case_name: str) -> None:
    case, records = fixture_records(case_name)
    records = [r for r in records if not any(t.startswith("$") for t in r.tags or ())]  # see test_dollar_tag_is_refused
    sink = await agg_sink(open_sinks, db_url, use_mixed_collection=True, track_all_paths=case["track_all_paths"],
                          ignore_tag_prefix_list=case["ignore_tag_prefix_list"])  # fmt: skip
    await sink.write(SinkBatch("f1", records))
    await sink.write(SinkBatch("f2", records))  # a second batch merges into the same documents
    aggregates = aggregate_records(
        records, hour_floor, track_all_paths=case["track_all_paths"], ignore_tag_prefixes=case["ignore_tag_prefix_list"]
    )
    sim = simulate(list(aggregates.values()) * 2, mixed=True)
    assert_matches_simulation(db, sim)
    for org, agg in aggregates.items():
        stored = db[f"z_tyk_analyticz_aggregate_{org}"].find_one()
        assert stored["total"]["hits"] == 2 * agg.total.hits > 0
        if len(records) == len(case["records"]):  # Tyk's own aggregate of the same records
            assert stored["total"]["hits"] == 2 * case["aggregate"][org]["Total"]["hits"]
            assert stored["total"]["totallatency"] == 2 * case["aggregate"][org]["Total"]["total_latency"]


async def test_dollar_tag_is_refused_as_data(db_url: str, db: Any, open_sinks: list[Any]) -> None:
    """Tyk never escapes ``$``: a tag starting with it makes the server refuse the org's update.
    Tyk loses the batch; here the delivery layer gets a data error, splits the batch and
    dead-letters only that record, and the rest is written."""
    _case, records = fixture_records("dotted_ids_keys_oauth_paths_tags")
    bad = [r for r in records if any(t.startswith("$") for t in r.tags or ())]
    good = [r for r in records if r not in bad]
    assert bad and good
    sink = await agg_sink(open_sinks, db_url, track_all_paths=True)
    with pytest.raises(BatchDataError, match="aggregate upsert"):
        await sink.write(SinkBatch("D", bad))
    assert db.list_collection_names() == [] or db["z_tyk_analyticz_aggregate_org.with.dots"].count_documents({}) == 0
    await sink.write(SinkBatch("G", good))
    assert db["z_tyk_analyticz_aggregate_org.with.dots"].find_one()["apikeys"]["key"]["with"]["dots"]["hits"] == len(good)


# --------------------------------------------------------------------------- exactly-once


def _traffic(n: int, org: str = "orgX", at: datetime = T) -> list[Record]:
    codes = (200, 404, 500, 201)
    return [
        Record(
            org_id=org,
            api_id=f"api{i % 3}",
            api_key=f"key{i % 4}",
            path=f"/p/{i % 5}",
            api_version="v1",
            timestamp=at + timedelta(seconds=i),
            response_code=codes[i % 4],
            request_time=10 + i,
            latency_total=10 + i,
            latency_upstream=5 + i,
            tags=[f"t{i % 2}", "key-x"],
            geo_country_iso_code="GB",
            track_path=True,
            expire_at=at + timedelta(days=7),
        )
        for i in range(n)
    ]


async def test_same_batch_twice_leaves_documents_unchanged(db_url: str, db: Any, open_sinks: list[Any]) -> None:
    sink = await agg_sink(open_sinks, db_url, use_mixed_collection=True)
    a, b = _traffic(20), _traffic(10, at=T + timedelta(minutes=5))
    await sink.write(SinkBatch("A", a))
    before = snapshot(db)
    await sink.write(SinkBatch("A", a))
    await sink.write(SinkBatch("A.0", a[:10]))
    await sink.write(SinkBatch("A.1.r1", a[10:]))
    assert snapshot(db) == before
    await sink.write(SinkBatch("B", b))
    after_b = snapshot(db)
    await sink.write(SinkBatch("A", a))  # an old batch coming back after a newer one
    fresh = await agg_sink(open_sinks, db_url, use_mixed_collection=True)  # a restarted process
    await fresh.write(SinkBatch("B", b))
    await fresh.write(SinkBatch("A", a))
    assert snapshot(db) == after_b
    doc = db.z_tyk_analyticz_aggregate_orgX.find_one()
    assert doc["total"]["hits"] == 30 and doc[LEDGER_FIELD] == ["A", "B"] and doc[LAST_FIELD] == "B"
    assert_matches_simulation(
        db, simulate([*aggregate_records(a, hour_floor).values(), *aggregate_records(b, hour_floor).values()], mixed=True)
    )


async def test_crash_between_the_two_steps(db_url: str, db: Any, open_sinks: list[Any]) -> None:
    """Step 1 applied, step 2 lost: the redelivery adds nothing and refreshes the averages."""
    records = _traffic(12)
    (agg,) = aggregate_records(records, hour_floor).values()
    name = "z_tyk_analyticz_aggregate_orgX"
    client = _async_client(db_url)
    try:
        writer = AggregateWriter()
        collection = client.get_default_database()[name]
        from pump.aggregate import as_change
        from pump.sinks.mongo.upsert import go_typed

        change = go_typed(as_change(agg))
        change["$set"][LAST_FIELD] = "C"
        change["$push"] = {LEDGER_FIELD: {"$each": ["C"], "$slice": -10}}
        await writer._step1(collection, {"orgid": agg.org_id, "timestamp": agg.timestamp}, change, ["C"])
    finally:
        await client.close()
    half = db[name].find_one()
    assert half["total"]["hits"] == 12 and "latency" not in half["total"] and "lists" not in half
    sink = await agg_sink(open_sinks, db_url)
    await sink.write(SinkBatch("C", records))
    assert_matches_simulation(db, {name: simulate([agg])[name]})


async def test_stale_step2_never_overwrites_a_newer_one(db_url: str, db: Any, open_sinks: list[Any]) -> None:
    """Batch C's step 2 was lost, then D was written: C's redelivery leaves D's averages alone."""
    c, d = _traffic(8), _traffic(8, at=T + timedelta(minutes=1))
    (agg_c,) = aggregate_records(c, hour_floor).values()
    name = "z_tyk_analyticz_aggregate_orgX"
    client = _async_client(db_url)
    try:
        from pump.aggregate import as_change
        from pump.sinks.mongo.upsert import go_typed

        change = go_typed(as_change(agg_c))
        change["$set"][LAST_FIELD] = "C"
        change["$push"] = {LEDGER_FIELD: {"$each": ["C"], "$slice": -10}}
        await AggregateWriter()._step1(client.get_default_database()[name], {"orgid": "orgX", "timestamp": agg_c.timestamp}, change, ["C"])
    finally:
        await client.close()
    sink = await agg_sink(open_sinks, db_url)
    await sink.write(SinkBatch("D", d))
    after_d = snapshot(db)
    await sink.write(SinkBatch("C", c))
    assert snapshot(db) == after_d
    assert db[name].find_one()["total"]["hits"] == 16


# --------------------------------------------------------------------------- self-healing


def _wide_tags(org: str, count: int, at: datetime, offset: int = 0) -> list[Record]:
    """Records whose tags make an update of about 180 KB per tag (10 KB tag names)."""
    return [
        Record(org_id=org, api_id="api1", response_code=200, timestamp=at, tags=[f"{i + offset:04d}" + "t" * 10_000]) for i in range(count)
    ]


async def test_self_healing_does_not_count_written_orgs_again(
    db_url: str, db: Any, open_sinks: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    small = [Record(org_id="small", api_id="api1", response_code=200, timestamp=T) for _ in range(3)]
    wide = _wide_tags("wide", 50, T) + _wide_tags("wide", 50, T + timedelta(minutes=2), offset=50)  # > 16 MB in one update
    sink = await agg_sink(open_sinks, db_url, use_mixed_collection=True, enable_aggregate_self_healing=True)
    with caplog.at_level(logging.WARNING), pytest.raises(BatchDataError, match="too large"):
        await sink.write(SinkBatch("X", small + wide))
    assert sink.aggregation_time == 1  # 60 → 30 → 15 → 7 → 3 → 1, then no smaller documents are possible
    assert sum("aggregation_time decreased" in r.getMessage() for r in caplog.records) == 5
    for name in ("z_tyk_analyticz_aggregate_small", MIXED_COLLECTION):
        assert sum(d["total"]["hits"] for d in db[name].find({"orgid": "small"})) == 3, name  # Tyk: 3 × 6
    # The delivery layer now splits the batch; the halves fit in new, per-minute documents.
    await sink.write(SinkBatch("X.0", small + wide[:50]))
    await sink.write(SinkBatch("X.1", wide[50:]))
    for name in ("z_tyk_analyticz_aggregate_small", MIXED_COLLECTION):
        assert sum(d["total"]["hits"] for d in db[name].find({"orgid": "small"})) == 3, name
    wide_docs = list(db.z_tyk_analyticz_aggregate_wide.find())
    assert len(wide_docs) == 2 and sum(d["total"]["hits"] for d in wide_docs) == 100
    assert sorted(d["timestamp"] for d in wide_docs) == [T, T + timedelta(minutes=2)]


# --------------------------------------------------------------------------- other behaviour


async def test_tag_count_warning(db_url: str, db: Any, open_sinks: list[Any], caplog: pytest.LogCaptureFixture) -> None:
    sink = await agg_sink(open_sinks, db_url, threshold_len_tag_list=2)
    with caplog.at_level(logging.WARNING):
        await sink.write(
            SinkBatch("t1", [Record(org_id="o", response_code=200, timestamp=T, tags=["x-request-1", "x-request-2", "x-request-3"])])
        )
    assert any("Found more than 2 tag entries" in r.getMessage() and "x-request-" in r.getMessage() for r in caplog.records)


async def test_indexes_and_refused_ttl(db_url: str, db: Any, open_sinks: list[Any], caplog: pytest.LogCaptureFixture) -> None:
    sink = await agg_sink(open_sinks, db_url)
    with caplog.at_level(logging.WARNING):
        await sink.write(SinkBatch("i1", _traffic(2)))
    info = db.z_tyk_analyticz_aggregate_orgX.index_information()
    assert info["timestamp_1"]["key"] == [("timestamp", 1)] and info["orgid_1"]["key"] == [("orgid", 1)]
    if "expireAt_1" in info:
        assert info["expireAt_1"]["expireAfterSeconds"] == 0
    else:
        assert any("TTL index" in r.getMessage() for r in caplog.records)


async def test_clock_continues_the_newest_stored_bucket(db_url: str, db: Any, open_sinks: list[Any]) -> None:
    db[MIXED_COLLECTION].insert_many([{"orgid": "o", "timestamp": T - timedelta(hours=1)}, {"orgid": "o", "timestamp": T}])
    sink = await agg_sink(open_sinks, db_url, aggregation_time=7)
    assert sink.clock.last == T
    await sink.write(SinkBatch("s1", [Record(org_id="o2", response_code=200, timestamp=T + timedelta(minutes=3))]))
    assert db.z_tyk_analyticz_aggregate_o2.find_one()["timestamp"] == T


async def test_discarded_dimensions_do_not_hide_other_pumps_data(db_url: str, db: Any, open_sinks: list[Any]) -> None:
    records = _traffic(4)
    full = await agg_sink(open_sinks, db_url)
    await full.write(SinkBatch("f", records))
    partial = await agg_sink(open_sinks, db_url, ignore_aggregations=["apikeys", "Tags"])
    await partial.write(SinkBatch("p", records))
    doc = db.z_tyk_analyticz_aggregate_orgX.find_one()
    assert doc["apikeys"]["key0"]["hits"] == 1 and len(doc["lists"]["apikeys"]) == 4
    assert doc["total"]["hits"] == 8 and doc["tags"]["t0"]["hits"] == 2
    assert_matches_simulation(
        db,
        simulate(
            [
                *aggregate_records(records, hour_floor).values(),
                discard_aggregations(next(iter(aggregate_records(records, hour_floor).values())), ["apikeys", "Tags"]),
            ]
        ),
    )


async def test_server_outage_is_retried_without_double_counting(tmp_path: Path) -> None:
    """The server stops mid-run: the write fails as retriable, the records stay with the delivery
    layer, and the same batch written after the restart is counted once."""
    server = servers.start("mongo", tmp_path / "own-mongo")
    if server.external:
        server.stop()
        pytest.skip("needs a server this test can stop (PUMP_TEST_MONGO_URL is set)")
    url = database_url(server.url, "outage")
    sink = MongoAggregateSink("agg", Meta.model_validate({"mongo_url": url, "use_mixed_collection": True}), timeout=2)
    client: MongoClient[Any] = MongoClient(url, tz_aware=True)
    try:
        await sink.start()
        await sink.write(SinkBatch("A", _traffic(6)))
        server.stop()
        with pytest.raises(RetriableError):
            await sink.write(SinkBatch("B", _traffic(4, at=T + timedelta(minutes=1))))
        server = servers.start("mongo", tmp_path / "own-mongo", port=server.port)
        await sink.write(SinkBatch("B", _traffic(4, at=T + timedelta(minutes=1))))
        await sink.write(SinkBatch("A", _traffic(6)))
        for name in ("z_tyk_analyticz_aggregate_orgX", MIXED_COLLECTION):
            (doc,) = list(client.get_default_database()[name].find())
            assert doc["total"]["hits"] == 10 and doc[LEDGER_FIELD] == ["A", "B"], name
    finally:
        await sink.close()
        client.close()
        server.stop()


# --------------------------------------------------------------------------- vs. Tyk's stored documents


@pytest.mark.parametrize("case_name", ["main_track_all_paths_true", "two_orgs_and_skipped_records", "main_ignore_tag_prefix_x_request_id"])
async def test_stored_documents_equal_tyks_with_bson_types(db_url: str, db: Any, open_sinks: list[Any], case_name: str) -> None:
    """Two batches through the sink on the real server; every stored document, in canonical
    Extended JSON (BSON types visible), equals what Tyk's pump stores (aggregates.json
    ``pump_writes``, Tyk's functions run in Go), ``lists.*`` requesttime included; only ``_id``,
    our ledger fields and the ``lists.*`` order (Tyk's is random) are left out."""
    from tests.unit.aggregate.test_mongo_pump_writes_golden import _sort_lists, differences

    case, records = fixture_records(case_name)
    options = {"track_all_paths": case["track_all_paths"], "ignore_tag_prefix_list": case["ignore_tag_prefix_list"]}
    sink = await agg_sink(open_sinks, db_url, **options)
    for write, batch in enumerate([records, records[: (len(records) + 1) // 2]]):
        await sink.write(SinkBatch(f"golden{write}", batch))
        for org, expected in case["mongo"].items():
            (stored,) = canonical(db[f"z_tyk_analyticz_aggregate_{org}"])
            ours = {k: v for k, v in stored.items() if k not in ("_id", LEDGER_FIELD, LAST_FIELD)}
            theirs = copy.deepcopy(expected["pump_writes"][write])
            _sort_lists(ours["lists"])
            _sort_lists(theirs["lists"])
            assert differences(ours, theirs) == set(), (org, write)
