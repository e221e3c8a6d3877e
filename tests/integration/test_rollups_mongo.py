"""``mongo-pump-aggregate`` ``rollups:`` on a real Mongo-wire server (FerretDB): exact documents
per granularity for the fixed records of the SQL golden test, a redelivered (and split, then
redelivered) batch leaves every rollup collection exact, the TTL index of ``ttl``, and without
``rollups`` no rollup collection appears."""

from __future__ import annotations

from typing import Any

import pytest

from pump.aggregate.rollups import GRANULARITIES
from pump.record import Record
from pump.sinks.base import SinkBatch
from pump.sinks.mongo.aggregate import Meta, MongoAggregateSink
from tests.integration.test_rollups_sql import GOLDEN, records

pytestmark = pytest.mark.integration


async def agg_sink(open_sinks: list[Any], url: str, **meta: Any) -> MongoAggregateSink:
    sink = MongoAggregateSink("agg", Meta.model_validate({"mongo_url": url, **meta}), timeout=20)
    open_sinks.append(sink)
    await sink.start()
    return sink


def totals(db: Any, granularity: str) -> list[tuple[Any, ...]]:
    docs = sorted(db[f"tyk_analytics_aggregates_{granularity}"].find({"orgid": "org1"}), key=lambda d: d["timestamp"])
    out = []
    for d in docs:
        t = d["total"]
        em = t.get("errormap") or {}
        out.append((int(d["timestamp"].timestamp()), t["hits"], t["success"], t["errortotal"], float(t["totalrequesttime"]),
                    em.get("404", 0), em.get("500", 0)))  # fmt: skip
    return out


async def test_rollup_documents_per_granularity_are_exact(db_url: str, db: Any, open_sinks: list[Any]) -> None:
    sink = await agg_sink(open_sinks, db_url, rollups=list(GRANULARITIES))
    await sink.write(SinkBatch("b1", records()))
    for granularity, expected in GOLDEN.items():
        assert totals(db, granularity) == expected, granularity
    day = sorted(db["tyk_analytics_aggregates_day"].find(), key=lambda d: d["timestamp"])
    assert [(d["apiid"]["api1"]["hits"], d["apiid"]["api1"]["latency"], d["timeid"]["day"]) for d in day] == [
        (1, 10.0, 31),
        (3, 30.0, 1),
        (1, 50.0, 3),
    ]
    # the org collection is Tyk's, unchanged: one hourly document for the whole batch (first record's hour)
    assert db["z_tyk_analyticz_aggregate_org1"].count_documents({}) == 1


async def test_redelivered_and_split_batches_keep_every_rollup_exact(db_url: str, db: Any, open_sinks: list[Any]) -> None:
    recs = records()
    sink = await agg_sink(open_sinks, db_url, rollups=list(GRANULARITIES))
    await sink.write(SinkBatch("b1", recs))
    fresh = await agg_sink(open_sinks, db_url, rollups=list(GRANULARITIES))  # a restarted process
    await fresh.write(SinkBatch("b1", recs))  # redelivered after a crash before the acknowledgement
    await fresh.write(SinkBatch("b1.1", recs[2:]))  # a late split half of the applied batch
    again = await agg_sink(open_sinks, db_url, rollups=list(GRANULARITIES))
    await again.write(SinkBatch("b2.0", recs[:2]))  # a split half of the next batch
    await again.write(SinkBatch("b2.1", recs[2:]))  # and its other half
    await again.write(SinkBatch("b2.1", recs[2:]))  # redelivered
    for granularity, expected in GOLDEN.items():
        doubled = [(ts, h * 2, s * 2, e * 2, rt * 2, c4 * 2, c5 * 2) for ts, h, s, e, rt, c4, c5 in expected]
        assert totals(db, granularity) == doubled, granularity


async def test_ttl_index_and_no_rollups_without_the_option(
    db_url: str, db: Any, open_sinks: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    plain = await agg_sink(open_sinks, db_url)
    await plain.write(SinkBatch("b0", records()))
    assert not [n for n in db.list_collection_names() if n.startswith("tyk_analytics_aggregates")]
    sink = await agg_sink(open_sinks, db_url, rollups=[{"granularity": "day", "ttl": 86400 * 90}, "year"])
    await sink.write(SinkBatch("b1", records()))
    day = {i["name"]: i for i in db["tyk_analytics_aggregates_day"].list_indexes()}
    ttl = [i for i in day.values() if "expireAfterSeconds" in i]
    if "refused to create a TTL index" in caplog.text:  # FerretDB: no TTL indexes; said so, and written anyway
        assert [dict(i["key"]) for i in day.values()] == [{"_id": 1}, {"orgid": 1}]
    else:
        assert [(dict(i["key"]), i["expireAfterSeconds"]) for i in ttl] == [({"timestamp": 1}, 86400 * 90)]
    year = list(db["tyk_analytics_aggregates_year"].list_indexes())
    assert not [i for i in year if "expireAfterSeconds" in i]
    assert sorted(n for n in db.list_collection_names() if n.startswith("tyk_analytics_aggregates")) == [
        "tyk_analytics_aggregates_day",
        "tyk_analytics_aggregates_year",
    ]


def test_ttl_shorter_than_a_bucket_is_refused() -> None:
    with pytest.raises(ValueError, match="shorter than one day"):
        Meta.model_validate({"mongo_url": "mongodb://x/y", "rollups": [{"granularity": "day", "ttl": 3600}]})
    with pytest.raises(ValueError, match="listed twice"):
        Meta.model_validate({"mongo_url": "mongodb://x/y", "rollups": ["day", {"granularity": "day"}]})


def _docs(db: Any) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for name in sorted(db.list_collection_names()):
        docs = [{k: v for k, v in d.items() if k not in ("_id", "_pump_applied", "_pump_last")} for d in db[name].find()]
        out[name] = sorted(docs, key=lambda d: (d["orgid"], d["timestamp"]))
    return out


async def test_one_flush_of_many_batches_equals_writing_them_one_by_one(
    mongo_server: Any, db_url: str, db: Any, open_sinks: list[Any]
) -> None:
    from pymongo import MongoClient

    from tests.integration.mongo_helpers import database_url

    recs = records() + [Record(org_id="org2", api_id=r.api_id, response_code=r.response_code, timestamp=r.timestamp) for r in records()]
    batches = [SinkBatch("b1", recs[:3]), SinkBatch("b2", recs[3:6]), SinkBatch("b3", recs[6:])]
    one_by_one = await agg_sink(open_sinks, db_url, rollups=["hour", "day"], use_mixed_collection=True)
    for b in batches:
        await one_by_one.write(b)
    other_url = database_url(mongo_server.url, db.name + "_flush")
    client: MongoClient[Any] = MongoClient(other_url, tz_aware=True)
    try:
        flushed = await agg_sink(open_sinks, other_url, rollups=["hour", "day"], use_mixed_collection=True, publish_interval="5m")
        assert flushed.publish_interval == 300
        await flushed.write(batches[0])  # applied before a crash
        assert await flushed.write_many(batches) == {}  # the flush after the restart holds it again
        await flushed.write_many(batches[1:])  # and a redelivered part of the flush
        assert _docs(client.get_default_database()) == _docs(db)
    finally:
        client.drop_database(client.get_default_database().name)
        client.close()


def test_sigkill_while_holding_for_a_flush_then_restart_counts_once(tmp_path: Any, redis_url: str, db_url: str, db: Any) -> None:
    """The real daemon with ``publish_interval: 60m`` holds claimed batches; SIGKILLed, nothing of
    them is written; the restarted pump (``--once``) writes every record once, rollups too."""
    import signal

    from tests.helpers import BASE_LIST, list_lengths, msgpack_payloads, numbered, push, run_once, write_config
    from tests.integration.test_reliability import start_daemon, wait_for

    meta = {"mongo_url": db_url, "publish_interval": "60m", "rollups": ["hour", "day"]}
    config = write_config(
        tmp_path / "pump.json", redis_url, {"agg": {"type": "mongo-pump-aggregate", "meta": meta}},
        delivery={"claim_size": 400, "max_batches_in_flight": 8},
    )  # fmt: skip
    push(redis_url, msgpack_payloads(numbered(2000)))
    log = tmp_path / "pump.log"
    proc = start_daemon(config, log)
    try:
        wait_for(lambda: list_lengths(redis_url).get(BASE_LIST, 0) == 0, 60, "every record claimed", proc)
        wait_for(lambda: "Holding batches for the next aggregate flush" in log.read_text(), 60, "a batch held", proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert [n for n in db.list_collection_names() if db[n].count_documents({})] == []  # held, not written

    done = run_once(config)
    assert done.returncode == 0, done.stderr[-4000:]
    assert sum(list_lengths(redis_url).values()) == 0
    for name in ("z_tyk_analyticz_aggregate_5e9d9544a1dcd60001d0ed20", "tyk_analytics_aggregates_hour", "tyk_analytics_aggregates_day"):
        assert sum(d["total"]["hits"] for d in db[name].find()) == 2000, name
