"""``mongo``, ``mongo-pump-selective`` and the Mongo uptime pump against a real Mongo-wire server
(FerretDB v1.24.2 started by tests/servers, or ``PUMP_TEST_MONGO_URL``). Every test uses its own
database."""

from __future__ import annotations

import hashlib
import json
import logging
import socket
from pathlib import Path
from typing import Any

import bson
import bson.json_util
import pytest
from bson.raw_bson import RawBSONDocument

from pump.config.model import Config
from pump.decode.msgpack import decode_record
from pump.decode.uptime import decode_uptime
from pump.errors import RejectedRecords, RetriableError
from pump.record import Record
from pump.sinks.base import SinkBatch
from pump.sinks.mongo.documents import TOO_LARGE_RAW_RESPONSE, to_document
from pump.sinks.mongo.raw import Meta as MongoMeta
from pump.sinks.mongo.raw import MongoSink
from pump.sinks.mongo.selective import Meta as SelectiveMeta
from pump.sinks.mongo.selective import MongoSelectiveSink
from pump.sinks.mongo.uptime import build_uptime
from tests.helpers import make_record, numbered

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "tyk"


def canonical(collection: Any) -> list[dict[str, Any]]:
    """Every document of a collection as canonical Extended JSON (types visible), by ``_id``."""
    raw = collection.with_options(codec_options=collection.codec_options.with_options(document_class=RawBSONDocument))
    docs = [json.loads(bson.json_util.dumps(bson.decode(d.raw), json_options=bson.json_util.CANONICAL_JSON_OPTIONS)) for d in raw.find()]
    return sorted(docs, key=lambda d: d["_id"]["$oid"])


def with_ids(records: list[Record]) -> list[Record]:
    """Give in-process records the kind of id the decoder gives (a 128-bit hash per payload)."""
    for i, r in enumerate(records):
        r.record_id = hashlib.md5(f"{r.path}|{i}".encode("utf-8", "surrogatepass")).hexdigest()
    return records


def fixture_records() -> list[Record]:
    cases = json.loads((FIXTURES / "records.json").read_text())["cases"]
    return [decode_record(bytes.fromhex(c["msgpack_hex"])) for c in cases]


async def mongo_sink(open_sinks: list[Any], url: str, **meta: Any) -> MongoSink:
    sink = MongoSink("mongo", MongoMeta.model_validate({"mongo_url": url, "collection_name": "tyk_analytics", **meta}), timeout=10)
    open_sinks.append(sink)
    await sink.start()
    return sink


# --------------------------------------------------------------------------- mongo


async def test_mongo_stores_tyk_documents(db_url: str, db: Any, open_sinks: list[Any]) -> None:
    records = fixture_records()
    sink = await mongo_sink(open_sinks, db_url)
    await sink.write(SinkBatch("b1", records))

    kept = [r for r in records if r.response_code != -1 and not r.is_mcp]
    assert len(kept) == len(records) - 2  # the -1 and the MCP fixture
    assert any(r.is_graph for r in kept)
    # Byte-identical payloads are the same record (same id): three fixture cases encode alike.
    unique = {to_document(r)["_id"]: to_document(r) for r in kept}
    assert len(unique) < len(kept)
    expected = json.loads(
        bson.json_util.dumps([bson.decode(bson.encode(d)) for d in unique.values()], json_options=bson.json_util.CANONICAL_JSON_OPTIONS)
    )
    assert canonical(db.tyk_analytics) == sorted(expected, key=lambda d: d["_id"]["$oid"])
    stored = db.tyk_analytics.find_one({"path": "/users/42"})
    assert stored["rawpath"] == "/users/42" and stored["geo"]["country"]["isocode"] == "GB"
    assert "closedconnection" in stored["network"] and "expireAt" in stored


async def test_mongo_same_batch_twice_changes_nothing(db_url: str, db: Any, open_sinks: list[Any]) -> None:
    records = with_ids(numbered(40))
    sink = await mongo_sink(open_sinks, db_url)
    await sink.write(SinkBatch("b1", records))
    before = canonical(db.tyk_analytics)
    await sink.write(SinkBatch("b1", records))
    await sink.write(SinkBatch("b1.0", records[:20]))
    assert canonical(db.tyk_analytics) == before
    assert len(before) == 40
    more = with_ids(numbered(50))
    await sink.write(SinkBatch("b2", more))  # 40 already there, 10 new
    assert db.tyk_analytics.count_documents({}) == 50


async def test_mongo_oversize_records_lose_raw_payloads(db_url: str, db: Any, open_sinks: list[Any]) -> None:
    big = make_record(record_id="a" * 32, raw_request="QQ==" * 600, raw_response="Qg==" * 600)
    small = make_record(record_id="b" * 32, raw_request="QQ==", raw_response="Qg==")
    sink = await mongo_sink(open_sinks, db_url, max_document_size_bytes=3000)
    await sink.write(SinkBatch("b1", [big, small]))
    stored = {d["rawrequest"]: d["rawresponse"] for d in db.tyk_analytics.find()}
    assert stored == {"": TOO_LARGE_RAW_RESPONSE, "QQ==": "Qg=="}


async def test_mongo_small_insert_runs_write_everything(db_url: str, db: Any, open_sinks: list[Any]) -> None:
    records = with_ids(numbered(25))
    sink = await mongo_sink(open_sinks, db_url, max_insert_batch_size_bytes=2100)  # two records per run
    await sink.write(SinkBatch("b1", records))
    assert db.tyk_analytics.count_documents({}) == 25


async def test_mongo_indexes_on_a_new_collection(db_url: str, db: Any, open_sinks: list[Any]) -> None:
    await mongo_sink(open_sinks, db_url)
    info = db.tyk_analytics.index_information()
    assert info["orgid_1"]["key"] == [("orgid", 1)]
    assert info["apiid_1"]["key"] == [("apiid", 1)]
    assert info["logBrowserIndex"]["key"] == [("timestamp", -1), ("orgid", 1), ("apiid", 1), ("apikey", 1), ("responsecode", 1)]


async def test_mongo_leaves_an_existing_collection_alone(db_url: str, db: Any, open_sinks: list[Any]) -> None:
    db.create_collection("tyk_analytics")
    await mongo_sink(open_sinks, db_url, collection_cap_enable=True)
    assert list(db.tyk_analytics.index_information()) == ["_id_"]
    assert not db.tyk_analytics.options().get("capped")


async def test_mongo_omit_index_creation(db_url: str, db: Any, open_sinks: list[Any]) -> None:
    sink = await mongo_sink(open_sinks, db_url, omit_index_creation=True)
    await sink.write(SinkBatch("b1", [make_record(record_id="c" * 32)]))
    assert list(db.tyk_analytics.index_information()) == ["_id_"]


async def test_mongo_capped_collection(db_url: str, db: Any, open_sinks: list[Any]) -> None:
    await mongo_sink(open_sinks, db_url, collection_cap_enable=True, collection_cap_max_size_bytes=1 << 20)
    options = db.tyk_analytics.options()
    assert options.get("capped") is True and options.get("size") == 1 << 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_server_down_is_retriable_and_password_not_shown() -> None:
    url = f"mongodb://admin:hunter2@127.0.0.1:{_free_port()}/x"
    sink = MongoSink("mongo", MongoMeta.model_validate({"mongo_url": url, "collection_name": "c"}), timeout=0.5)
    try:
        with pytest.raises(RetriableError) as exc:
            await sink.start()
        assert "hunter2" not in str(exc.value) and "<redacted>" in str(exc.value)
        with pytest.raises(RetriableError):
            await sink.check()
    finally:
        await sink.close()


# --------------------------------------------------------------------------- selective


async def test_selective_one_collection_per_org(db_url: str, db: Any, open_sinks: list[Any], caplog: pytest.LogCaptureFixture) -> None:
    sink = MongoSelectiveSink("sel", SelectiveMeta.model_validate({"mongo_url": db_url, "max_document_size_bytes": 3000}), timeout=10)
    open_sinks.append(sink)
    await sink.start()
    records = [
        make_record(record_id="1" * 32, org_id="orgA"),
        make_record(record_id="2" * 32, org_id="orgB"),
        make_record(record_id="3" * 32, org_id=""),
        make_record(record_id="4" * 32, org_id="orgA", response_code=-1),
        make_record(record_id="5" * 32, org_id="orgA", raw_request="x" * 4000),
        make_record(record_id="6" * 32, org_id="orgA", path="/second"),
    ]
    with caplog.at_level(logging.WARNING), pytest.raises(RejectedRecords) as exc:
        await sink.write(SinkBatch("b1", records))
    assert list(exc.value.rejected) == [4] and exc.value.retry == []
    assert "max_document_size_bytes" in exc.value.rejected[4]
    assert sorted(n for n in db.list_collection_names() if n.startswith("z_")) == ["z_tyk_analyticz_orgA", "z_tyk_analyticz_orgB"]
    assert sorted(d["path"] for d in db.z_tyk_analyticz_orgA.find()) == ["/second", "/users/42"]
    info = db.z_tyk_analyticz_orgA.index_information()
    assert info["apiid_1"]["key"] == [("apiid", 1)]
    assert info["logBrowserIndex"]["key"] == [("timestamp", -1), ("apiid", 1), ("apikey", 1), ("responsecode", 1)]
    ttl_refused = "expireAt_1" not in info
    if ttl_refused:  # FerretDB: logged, records written anyway
        assert any("TTL index" in r.getMessage() for r in caplog.records)
    else:
        assert info["expireAt_1"].get("expireAfterSeconds") == 0
    before = canonical(db.z_tyk_analyticz_orgA)
    with pytest.raises(RejectedRecords):
        await sink.write(SinkBatch("b1", records))
    assert canonical(db.z_tyk_analyticz_orgA) == before


# --------------------------------------------------------------------------- uptime


async def test_uptime_documents_and_redelivery(db_url: str, db: Any, open_sinks: list[Any]) -> None:
    cases = json.loads((FIXTURES / "uptime.json").read_text())["cases"]
    records = [decode_uptime(bytes.fromhex(c["msgpack_hex_gateway_shape"])) for c in cases]
    config = Config.model_validate({"uptime_pump_config": {"mongo_url": db_url}, "pumps": {"d": {"type": "dummy"}}})
    sink = build_uptime(config)
    open_sinks.append(sink)
    await sink.start()
    await sink.write(SinkBatch("u1", records))
    await sink.write(SinkBatch("u1", records))
    docs = list(db.tyk_uptime_analytics.find())
    assert len(docs) == len(records)
    first = db.tyk_uptime_analytics.find_one({"url": cases[0]["go_json"]["url"], "responsecode": cases[0]["go_json"]["response_code"]})
    assert set(first) == {
        "_id",
        "url",
        "requesttime",
        "responsecode",
        "tcperror",
        "servererror",
        "day",
        "month",
        "year",
        "hour",
        "minute",
        "timestamp",
        "expireAt",
        "apiid",
        "orgid",
    }
    assert "logBrowserIndex" in db.tyk_uptime_analytics.index_information()


async def test_strings_that_are_not_utf8_are_stored_with_replacements(db_url: str, db: Any, open_sinks: list[Any]) -> None:
    """BSON strings must be UTF-8: the driver refuses lone surrogates, the sink cleans and resends."""
    bad = b"/caf\xe9/x".decode("utf-8", "surrogateescape")
    sink = await mongo_sink(open_sinks, db_url)
    await sink.write(SinkBatch("u", with_ids([make_record(path=bad, tags=["t" + bad]), make_record()])))
    assert db.tyk_analytics.count_documents({}) == 2
    assert db.tyk_analytics.find_one({"path": {"$ne": "/users/42"}})["tags"] == ["t/caf\ufffd/x"]
