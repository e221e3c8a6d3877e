"""The aggregate sink's bookkeeping without a server: batch lineage, Go types, plans, self-healing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import bson
import bson.json_util
import pytest
from bson import Int64

from pump.aggregate import aggregate_records, as_change, as_time_update, hour_floor
from pump.decode.msgpack import decode_record
from pump.record import Record
from pump.sinks.mongo.aggregate import Meta, MongoAggregateSink
from pump.sinks.mongo.upsert import INT64_FIELDS, AggregateTooLarge, go_typed, lineage

URL = "mongodb://127.0.0.1:1/unit"
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "tyk"
T = datetime(2024, 3, 1, 10, 17, 23, tzinfo=UTC)


def sink(**meta: Any) -> MongoAggregateSink:
    return MongoAggregateSink("agg", Meta.model_validate({"mongo_url": URL, **meta}))


def rec(org: str = "o1", at: datetime = T, **fields: Any) -> Record:
    return Record(org_id=org, api_id="api1", api_key="k1", timestamp=at, response_code=200, **fields)


@pytest.mark.parametrize(
    ("batch_id", "ids"),
    [
        ("abc", ["abc"]),
        ("abc.0", ["abc.0", "abc"]),
        ("abc.1.0.r2", ["abc.1.0.r2", "abc.1.0", "abc.1", "abc"]),
    ],
)
def test_lineage(batch_id: str, ids: list[str]) -> None:
    assert lineage(batch_id) == ids


def _canonical(value: dict[str, Any]) -> dict[str, Any]:
    return json.loads(bson.json_util.dumps(value, json_options=bson.json_util.CANONICAL_JSON_OPTIONS))  # type: ignore[no-any-return]


def test_go_typed_matches_tyks_bson_types() -> None:
    """The step-1 update has exactly the BSON types Tyk's Go code writes (aggregates.json)."""
    fixture = json.loads((FIXTURES / "aggregates.json").read_text())
    case = next(c for c in fixture["cases"] if c["name"] == "main_track_all_paths_true")
    records = [decode_record(bytes.fromhex(r["msgpack_hex"])) for r in case["records"]]
    aggs = aggregate_records(records, hour_floor, track_all_paths=True)
    for org, expected in case["mongo"].items():
        ours = _canonical(go_typed(as_change(aggs[org])))
        for op in ("$inc", "$max", "$min"):
            for path, value in expected["as_change"][op].items():
                assert next(iter(ours[op][path])) == next(iter(value)), (op, path)
        for path, value in expected["as_change"]["$set"].items():
            if isinstance(value, dict):
                assert next(iter(ours["$set"][path])) == next(iter(value)), path


def test_go_typed_lists_entries() -> None:
    stored = {"apiid": {"a": {"hits": 2, "totallatency": 10, "bytesin": 0, "lasttime": T}}, "total": {"hits": 2}}
    update = go_typed(as_time_update(stored))["$set"]
    (entry,) = update["lists.apiid"]
    assert all(isinstance(entry[f], Int64) for f in INT64_FIELDS)
    assert type(entry["hits"]) is int and type(entry["latency"]) is float


def test_batch_plan_is_reused_on_retry() -> None:
    s = sink(aggregation_time=7)
    first = s._plan("b1", [rec(at=T)])
    # The clock moves on with later batches; a retry must still use the first buckets.
    s._plan("b2", [rec(at=T + timedelta(minutes=30))])
    again = s._plan("b1", [rec(at=T)])
    assert again is first
    assert first.aggregates["o1"].timestamp == datetime(2024, 3, 1, 10, 17, tzinfo=UTC)


def test_split_batches_inherit_finished_orgs_not_buckets() -> None:
    s = sink(aggregation_time=7, use_mixed_collection=True)
    parent = s._plan("b1", [rec("o1", T), rec("o2", T + timedelta(minutes=2))])
    parent.done.add(("o1", "z_tyk_analyticz_aggregate_o1"))
    parent.aggregates = {}  # what a failed, split batch keeps
    child = s._plan("b1.1", [rec("o2", T + timedelta(minutes=9))])
    assert ("o1", "z_tyk_analyticz_aggregate_o1") in child.done
    assert child.aggregates["o2"].timestamp == datetime(2024, 3, 1, 10, 26, tzinfo=UTC)  # the clock's, not the parent's
    child.done.add(("o2", "tyk_analytics_aggregates"))
    grandchild = s._plan("b1.1.0", [rec("o2", T)])
    assert grandchild.done == {("o1", "z_tyk_analyticz_aggregate_o1"), ("o2", "tyk_analytics_aggregates")}
    assert s._plan("b2", [rec()]).done == set()  # unrelated batches inherit nothing


def test_plans_are_bounded() -> None:
    from pump.sinks.mongo.aggregate import MAX_PLANS

    s = sink()
    for i in range(MAX_PLANS + 10):
        s._plan(f"b{i}", [rec()])
    assert len(s.plans) == MAX_PLANS and "b0" not in s.plans


def test_ignore_aggregations_applied_to_the_plan() -> None:
    s = sink(ignore_aggregations=["APIKeys", "geo"])
    agg = s._plan("b", [rec(geo_country_iso_code="GB")]).aggregates["o1"]
    assert agg.apikeys == {} and agg.geo == {} and "api1" in agg.apiid


def test_self_healing_halves_and_restarts_the_clock() -> None:
    s = sink(enable_aggregate_self_healing=True)
    assert s.aggregation_time == 60
    too_large = AggregateTooLarge("o1", "c", Exception("Size must be between 0 and 16793600(16MB)"))
    steps = []
    while s._heal(too_large):
        steps.append(s.aggregation_time)
    assert steps == [30, 15, 7, 3, 1]
    assert s.clock.last is None


def test_self_healing_off_by_default() -> None:
    s = sink(aggregation_time=30)
    assert not s._heal(AggregateTooLarge("o1", "c", Exception("too large")))
    assert s.aggregation_time == 30


def test_self_healing_rebuilds_only_pending_orgs() -> None:
    s = sink(enable_aggregate_self_healing=True, use_mixed_collection=True)
    records = [rec("o1", T), rec("o2", T), rec("o3", T)]
    plan = s._plan("b", records)
    plan.done |= {("o1", "z_tyk_analyticz_aggregate_o1"), ("o1", "tyk_analytics_aggregates"), ("o2", "z_tyk_analyticz_aggregate_o2")}
    old = dict(plan.aggregates)
    s._heal(AggregateTooLarge("o2", "tyk_analytics_aggregates", Exception("too large")))
    s._rebuild_pending(plan, records)
    assert plan.aggregates["o1"] is old["o1"]
    assert plan.aggregates["o2"] is not old["o2"] and plan.aggregates["o3"] is not old["o3"]
    assert plan.aggregates["o2"].timestamp == datetime(2024, 3, 1, 10, 17, tzinfo=UTC)  # a minute bucket now


@pytest.mark.parametrize(
    ("meta", "minutes"),
    [({}, 60), ({"aggregation_time": 15}, 15), ({"aggregation_time": 0}, 60), ({"aggregation_time": 61}, 60),
     ({"aggregation_time": -5}, 60), ({"store_analytics_per_minute": True, "aggregation_time": 30}, 1)],
)  # fmt: skip
def test_aggregation_time_normalised_like_tyk(meta: dict[str, Any], minutes: int) -> None:
    assert sink(**meta).aggregation_time == minutes


def test_unknown_ignore_aggregations_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    sink(ignore_aggregations=["apikeys", "nonsense"])
    assert any("nonsense" in str(getattr(r, "names", "")) for r in caplog.records)
