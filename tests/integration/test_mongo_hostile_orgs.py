"""Hostile org ids against real FerretDB (issue 9 item 3): ``mongo-pump-selective`` and
``mongo-pump-aggregate`` name collections after the org id. A name the driver (``InvalidName``)
or the server (code 73) refuses used to be retried forever, holding every good record behind it.
Now those records are dead-lettered with the reason and the rest is delivered."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pump.delivery.deadletter import Entry
from pump.errors import BatchDataError
from pump.sinks.mongo_common import InvalidCollection, collection_name_problem, map_error
from tests.helpers import client, list_lengths, msgpack_payloads, numbered, pump_keys, push, run_once, write_config

pytestmark = pytest.mark.integration

GOOD = int(os.environ.get("PUMP_TEST_HOSTILE_GOOD", "2500"))  # per org: the 5,000 good records
HOSTILE = ["a$b", "x\x00y", "../../etc", "o" * 1500, "trailing.", "\udcff\udcfe"]


def test_collection_names_are_judged_before_any_io() -> None:
    db = "tyk_analytics"
    assert collection_name_problem(db, "z_tyk_analyticz_orgA") == ""
    for org in HOSTILE:
        assert collection_name_problem(db, "z_tyk_analyticz_" + org), org
    assert collection_name_problem(db, "z" * (255 - len(db) - 1)) == ""
    assert "255" in collection_name_problem(db, "z" * (255 - len(db)))


def test_server_code_73_and_invalid_name_are_collection_errors() -> None:
    from pymongo.errors import InvalidName, OperationFailure

    assert isinstance(map_error(OperationFailure("Invalid collection name", code=73), "insert"), InvalidCollection)
    assert isinstance(map_error(InvalidName("collection names must not contain '$'"), "insert"), InvalidCollection)
    assert isinstance(InvalidCollection("x"), BatchDataError)


def test_hostile_org_ids_are_dead_lettered_and_5000_good_records_delivered(tmp_path: Path, redis_url: str, db_url: str, db: Any) -> None:
    good = numbered(GOOD, org_id="orgA") + numbered(GOOD, org_id="orgB", api_key="k2")
    bad = [r for org in HOSTILE[:-1] for r in numbered(3, org_id=org, api_key="kb")]  # the test encoder needs UTF-8
    push(redis_url, msgpack_payloads(good + bad))
    config = write_config(
        tmp_path / "pump.conf", redis_url,
        {
            "selective": {"type": "mongo-pump-selective", "meta": {"mongo_url": db_url}},
            "aggregate": {"type": "mongo-pump-aggregate", "meta": {"mongo_url": db_url, "use_mixed_collection": True}},
        },
        purge_chunk=1000,
    )  # fmt: skip
    proc = run_once(config, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert db.z_tyk_analyticz_orgA.count_documents({}) == GOOD
    assert db.z_tyk_analyticz_orgB.count_documents({}) == GOOD
    totals = {d["orgid"]: d["total"]["hits"] for d in db.tyk_analytics_aggregates.find()}
    assert totals == {"orgA": GOOD, "orgB": GOOD}
    assert sorted(n for n in db.list_collection_names() if n.startswith("z_")) == [
        "z_tyk_analyticz_aggregate_orgA", "z_tyk_analyticz_aggregate_orgB", "z_tyk_analyticz_orgA", "z_tyk_analyticz_orgB",
    ]  # fmt: skip
    r = client(redis_url)
    for pump in ("selective", "aggregate"):
        entries = [Entry.decode(e) for e in r.lrange(f"pump:deadletter:{pump}", 0, -1)]
        assert len(entries) == len(bad), pump
        assert all("invalid collection name" in e.reason for e in entries), {e.reason for e in entries}
    r.close()
    assert list_lengths(redis_url) == {}
    assert pump_keys(redis_url) == sorted(["pump:deadletter:aggregate", "pump:deadletter:selective"]) or all(
        "deadletter" in k for k in pump_keys(redis_url)
    )
