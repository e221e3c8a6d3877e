"""``mongo-pump-aggregate`` with high-cardinality aggregates on the real FerretDB (issue 15 item 4):
an org-hour with ~1,000 tracked endpoints used to make one update of ~50,000 paths that FerretDB
did not finish in 16 minutes. Such an aggregate is now written in parts of ``max_update_paths``;
these tests check that a drain completes with exact counts, that the parts keep exactly-once
(a redelivery, and a crash between parts, count nothing twice) and that the documents are the
same as with one update."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pump.errors import RetriableError
from pump.record import Record
from pump.sinks.base import SinkBatch
from pump.sinks.mongo.aggregate import Meta, MongoAggregateSink
from pump.sinks.mongo.upsert import LEDGER_FIELD, PARTS_FIELD, AggregateWriter
from tests.helpers import list_lengths, msgpack_payloads, push, write_config
from tests.integration.test_reliability import start_daemon, wait_for

pytestmark = pytest.mark.integration

T = datetime(2023, 4, 4, 10, 0, tzinfo=UTC)
ORG_COLLECTION = "z_tyk_analyticz_aggregate_orgH"
#: What the delivery layer does with a slow write here: a pump ``timeout`` per attempt, retried.
ATTEMPT_SECONDS = 120
ATTEMPTS = 4


def traffic(n: int, paths: int, start: int = 0) -> list[Record]:
    """``n`` records of one org and one hour over ``paths`` distinct tracked endpoints."""
    return [
        Record(
            org_id="orgH", api_id=f"api{i % 2}", api_key=f"key{i % 3}", path=f"/ep/{i % paths}", method="GET",
            timestamp=T + timedelta(milliseconds=i * 700), response_code=(200, 404)[i % 2], request_time=10 + i % 7,
            latency_total=12, latency_upstream=5, track_path=True, expire_at=T + timedelta(days=7),
        )
        for i in range(start, start + n)
    ]  # fmt: skip


def sink_for(url: str, **meta: Any) -> MongoAggregateSink:
    return MongoAggregateSink("agg", Meta.model_validate({"mongo_url": url, **meta}), timeout=20)


async def deliver(sink: MongoAggregateSink, batch: SinkBatch) -> int:
    """Write as the delivery layer does: each attempt bounded, a timed-out or retriable attempt
    tried again with the same batch id. Returns the attempts it took."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            async with asyncio.timeout(ATTEMPT_SECONDS):
                await sink.write(batch)
            return attempt
        except (TimeoutError, RetriableError):
            continue
    pytest.fail(f"batch {batch.id} not written in {ATTEMPTS} attempts of {ATTEMPT_SECONDS} s: the aggregate upsert makes no progress")


def endpoint_hits(doc: dict[str, Any]) -> Counter[str]:
    return Counter({path: c["hits"] for path, c in doc["endpoints"].items()})


def expected(records: list[Record]) -> Counter[str]:
    return Counter(r.path for r in records)


@pytest.mark.slow
@pytest.mark.timeout(1500)
async def test_an_org_hour_with_a_thousand_endpoints_drains_with_exact_counts(db_url: str, db: Any) -> None:
    first, second = traffic(1000, 1000), traffic(1000, 1000, start=1000)
    sink = sink_for(db_url)
    try:
        await sink.start()
        await deliver(sink, SinkBatch("H1", first))
        await deliver(sink, SinkBatch("H2", second))  # every endpoint exists: the slow case
        await deliver(sink, SinkBatch("H2", second))  # redelivered: counts nothing twice
    finally:
        await sink.close()
    (doc,) = list(db[ORG_COLLECTION].find())
    assert doc["total"]["hits"] == 2000 and doc["total"]["errortotal"] == 1000
    assert len(doc["endpoints"]) == 1000 and endpoint_hits(doc) == expected(first + second)
    assert sum(c["hits"] for c in doc["apiendpoints"].values()) == 2000
    assert len(doc["lists"]["endpoints"]) == 1000 and {e["hits"] for e in doc["lists"]["endpoints"]} == {2}
    assert doc["endpoints"]["/ep/7"]["latency"] == 12.0 and doc[LEDGER_FIELD] == ["H1", "H2"] and not doc.get(PARTS_FIELD)


async def _documents(db: Any) -> list[dict[str, Any]]:
    return list(db[ORG_COLLECTION].find({}, {"_id": 0, LEDGER_FIELD: 0, PARTS_FIELD: 0}))


async def test_parts_write_the_same_documents_as_one_update(db_url: str, db: Any, open_sinks: list[Any]) -> None:
    """40 endpoints with ``max_update_paths: 50``: dozens of parts per batch; the documents equal
    those written by single updates (into another database), and redeliveries change nothing."""
    a, b = traffic(120, 40), traffic(80, 40, start=120)
    other_url = db_url + "_single"
    parted, single = sink_for(db_url, max_update_paths=50), sink_for(other_url)
    open_sinks += [parted, single]
    for s in (parted, single):
        await s.start()
        await s.write(SinkBatch("A", a))
        await s.write(SinkBatch("B", b))
    before = await _documents(db)
    await parted.write(SinkBatch("A", a))
    await parted.write(SinkBatch("B.1", b[40:]))
    fresh = sink_for(db_url, max_update_paths=50)  # a restarted process
    open_sinks.append(fresh)
    await fresh.start()
    await fresh.write(SinkBatch("B", b))
    assert await _documents(db) == before
    from pymongo import MongoClient

    client: MongoClient[Any] = MongoClient(other_url, tz_aware=True)
    try:
        assert list(client.get_default_database()[ORG_COLLECTION].find({}, {"_id": 0, LEDGER_FIELD: 0, PARTS_FIELD: 0})) == before
        client.drop_database(client.get_default_database().name)
    finally:
        client.close()
    assert before[0]["total"]["hits"] == 200 and endpoint_hits(before[0]) == expected(a + b)


class CrashAfter(AggregateWriter):
    """A writer whose connection is lost after ``parts`` successful updates (a crash between parts)."""

    def __init__(self, parts: int, **kw: Any) -> None:
        super().__init__(**kw)
        self.left = parts

    async def _step1(self, *args: Any, **kwargs: Any) -> Any:
        if self.left == 0:
            raise RetriableError("connection lost (test)")
        self.left -= 1
        return await super()._step1(*args, **kwargs)


async def test_a_crash_between_parts_then_redelivery_counts_once(db_url: str, db: Any, open_sinks: list[Any]) -> None:
    records = traffic(150, 40)
    crashing = sink_for(db_url, max_update_paths=50)
    open_sinks.append(crashing)
    await crashing.start()
    await crashing.write(SinkBatch("A", records[:50]))  # the document exists: B goes in parts
    crashing.writer = CrashAfter(5, ledger_size=1000, where="", max_paths=50)
    with pytest.raises(RetriableError):
        await crashing.write(SinkBatch("B", records[50:]))
    half = db[ORG_COLLECTION].find_one()  # five parts of B are in, B itself is not recorded
    assert "B" not in half[LEDGER_FIELD] and half[PARTS_FIELD] == [f"B#{k}" for k in range(5)]
    fresh = sink_for(db_url, max_update_paths=50)  # the next process gets B again
    open_sinks.append(fresh)
    await fresh.start()
    await fresh.write(SinkBatch("B", records[50:]))
    await fresh.write(SinkBatch("B", records[50:]))
    doc = db[ORG_COLLECTION].find_one()
    assert doc["total"]["hits"] == 150 and endpoint_hits(doc) == expected(records)
    assert doc[LEDGER_FIELD] == ["A", "B"] and doc.get(PARTS_FIELD) == []


def _first_done(db: Any) -> bool:
    doc = db[ORG_COLLECTION].find_one({}, {LEDGER_FIELD: 1})
    return bool(doc and doc.get(LEDGER_FIELD))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_second_sigterm_stops_a_high_cardinality_write_at_once(tmp_path: Path, redis_url: str, db_url: str, db: Any) -> None:
    """The real daemon in the middle of a 1,000-endpoint aggregate write: the first SIGTERM waits
    for the write in hand (shutdown_timeout 600 s), a second one stops within seconds (it took 23 s
    with one huge update; 0.3 s here), and every record not acknowledged is back in Redis."""
    push(redis_url, msgpack_payloads(traffic(1000, 1000) + traffic(1000, 1000, start=1000)))
    pumps = {"agg": {"type": "mongo-pump-aggregate", "meta": {"mongo_url": db_url}}}
    config = write_config(tmp_path / "pump.conf", redis_url, pumps, purge_chunk=1000, telemetry={"shutdown_timeout": 600})
    log = tmp_path / "pump.log"
    proc = start_daemon(config, log)
    try:
        wait_for(lambda: _first_done(db), 300, "the first batch to be written whole", proc)
        proc.send_signal(signal.SIGTERM)
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=2)  # draining: it waits for the second batch's write
        forced = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 1, "a forced stop exits 1"
        took = time.monotonic() - forced
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert "Second stop request: not waiting for in-flight writes." in text and "Shutdown on SIGTERM (forced)" in text
    assert took < 5, f"the second SIGTERM took {took:.1f} s to stop the pump"
    summary = re.search(r"Shutdown on SIGTERM \(forced\) ◆ \d+ batches done ◆ (\d+) records written .* ◆ (\d+) returned to Redis", text)
    assert summary is not None, text[-2000:]
    written, returned = int(summary.group(1)), int(summary.group(2))
    assert returned >= 1000 and written + returned == 2000, "every record not acknowledged is back in Redis"
    assert sum(list_lengths(redis_url).values()) == returned


async def test_a_server_call_over_write_timeout_is_retried_not_dropped(db_url: str, db: Any, open_sinks: list[Any]) -> None:
    """Every call runs under ``write_timeout``: one that exceeds it is a ``RetriableError`` (the
    delivery layer writes the batch again), and the repetition counts the records once."""
    records = traffic(60, 20)
    hurried = sink_for(db_url, max_update_paths=50, write_timeout=0.000_001)
    open_sinks.append(hurried)
    await hurried.start()
    with pytest.raises(RetriableError, match=r"(?i)timed? ?out|timeout"):
        await hurried.write(SinkBatch("A", records))
    patient = sink_for(db_url, max_update_paths=50)
    open_sinks.append(patient)
    await patient.start()
    await patient.write(SinkBatch("A", records))
    await patient.write(SinkBatch("A", records))
    doc = db[ORG_COLLECTION].find_one()
    assert doc["total"]["hits"] == 60 and endpoint_hits(doc) == expected(records)
