"""Golden cases from Tyk Pump's own tests (tyk-pump.md §7.2, cases 1–15), with Tyk's exact numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pump.aggregate import (
    BucketClock,
    aggregate_records,
    as_change,
    as_time_update,
    discard_aggregations,
    halve_aggregation_time,
    hour_floor,
    minute_floor,
    should_self_heal,
)
from pump.aggregate.engine import trim_tag
from pump.aggregate.model import Counter, OrgAggregate, TimeID
from pump.aggregate.mongo_update import MIXED_COLLECTION, collection_names, counter_change
from pump.aggregate.sql_rows import (
    AggregateRow,
    build_rows,
    merge_row,
    row_id,
    status_code_columns,
    table_name,
)
from pump.record import Record

from .mongo_sim import FakeCollection, write_aggregate

T = datetime(2023, 4, 4, 10, 0, tzinfo=UTC)


def rec(**fields: Any) -> Record:
    fields.setdefault("timestamp", T)
    return Record(**fields)


def upsert(table: dict[str, AggregateRow], rows: list[AggregateRow]) -> None:
    """``INSERT … ON CONFLICT (id) DO UPDATE`` on an in-memory table, via the declared rules."""
    for row in rows:
        old = table.get(row.id)
        table[row.id] = row if old is None else merge_row(old, row)


# --------------------------------------------------------------------------- 1. status codes


def test_case01_process_status_codes() -> None:
    codes = status_code_columns({"400": 4, "481": 3, "482": 2, "666": 3})
    assert codes == {"code_400": 4, "code_4x": 5}


# --------------------------------------------------------------------------- 2. tags


def test_case02_tags_empty_entries_ignored() -> None:
    records = [
        rec(org_id="ORG123", api_id="123", tags=["tag1", ""]),
        rec(org_id="ORG123", api_id="123", tags=["", "   ", "tag2"]),
    ]
    aggs = aggregate_records(records, hour_floor)
    assert list(aggs["ORG123"].tags) == ["tag1", "tag2"]


def test_case02_tags_dots_removed() -> None:
    records = [
        rec(org_id="ORG123", api_id="123", tags=["tag1", ""]),
        rec(org_id="ORG123", api_id="123", tags=["", "...", "tag1"]),
        rec(org_id="ORG123", api_id="123", tags=["internal.group1.dc1.", "tag1", ""]),
    ]
    aggs = aggregate_records(records, hour_floor)
    assert sorted(aggs["ORG123"].tags) == ["internalgroup1dc1", "tag1"]
    assert aggs["ORG123"].tags["tag1"].hits == 3


# --------------------------------------------------------------------------- 3. TrimTag


@pytest.mark.parametrize(
    ("raw", "trimmed"),
    [("...", ""), ("hello.world", "helloworld"), (".hello.world..", "helloworld"), (" hello world ", "hello world")],
)
def test_case03_trim_tag(raw: str, trimmed: str) -> None:
    assert trim_tag(raw) == trimmed


# --------------------------------------------------------------------------- 4. graph records


def test_case04_skip_graph_records() -> None:
    graph = {"IsGraphQL": True}
    records = [
        rec(org_id="123", tags=["tag_1", "tag_2"]),
        rec(org_id="777-graph", tags=["tag_1", "tag_2"], graphql_stats=graph),
        rec(org_id="987"),
        rec(org_id="555-graph", graphql_stats=graph),
    ]
    aggs = aggregate_records(records, minute_floor, track_all_paths=True)
    assert list(aggs) == ["123", "987"]


def test_case04_no_graph_records_nothing_skipped() -> None:
    aggs = aggregate_records([rec(org_id="123", tags=["tag_1"]), rec(org_id="987")], minute_floor)
    assert list(aggs) == ["123", "987"]


# --------------------------------------------------------------------------- 5. bucket timestamps


NOW = datetime(2024, 5, 6, 13, 47, 31, 123456, tzinfo=UTC)


def test_case05_aggregation_60_is_hour_floor() -> None:
    assert BucketClock(60).bucket_for(NOW) == datetime(2024, 5, 6, 13, 0, tzinfo=UTC)


@pytest.mark.parametrize("minutes", [1, 40])
def test_case05_fresh_clock_is_minute_floor(minutes: int) -> None:
    assert BucketClock(minutes).bucket_for(NOW) == datetime(2024, 5, 6, 13, 47, tzinfo=UTC)


def test_case05_stale_bucket_starts_new_one_at_record_minute() -> None:
    clock = BucketClock(7, last=NOW - timedelta(minutes=10))
    assert clock.bucket_for(NOW) == datetime(2024, 5, 6, 13, 47, tzinfo=UTC)
    assert clock.last == datetime(2024, 5, 6, 13, 47, tzinfo=UTC)


# --------------------------------------------------------------------------- 6. one counter's update


def _counter6(**over: Any) -> Counter:
    base: dict[str, Any] = dict(
        hits=2,
        success=1,
        error_total=0,
        request_time=100.0,
        total_request_time=100.0,
        total_upstream_latency=20,
        max_latency=100,
        max_upstream_latency=110,
        min_upstream_latency=10,
        min_latency=20,
        total_latency=150,
        error_map={"200": 1},
        last_time=T,
    )
    base.update(over)
    return Counter(**base)


def test_case06_counter_update_success() -> None:
    assert counter_change("test", "total", _counter6()) == {
        "$set": {
            "test.total.bytesin": 0,
            "test.total.bytesout": 0,
            "test.total.humanidentifier": "",
            "test.total.identifier": "",
            "test.total.lasttime": T,
            "test.total.openconnections": 0,
            "test.total.closedconnections": 0,
        },
        "$inc": {
            "test.total.errormap.200": 1,
            "test.total.errortotal": 0,
            "test.total.hits": 2,
            "test.total.success": 1,
            "test.total.totallatency": 150,
            "test.total.totalrequesttime": 100.0,
            "test.total.totalupstreamlatency": 20,
        },
        "$max": {"test.total.maxlatency": 100, "test.total.maxupstreamlatency": 110},
        "$min": {"test.total.minlatency": 20, "test.total.minupstreamlatency": 10},
    }
    assert isinstance(counter_change("test", "total", _counter6())["$inc"]["test.total.totalrequesttime"], float)


def test_case06_counter_update_all_errors_has_no_min() -> None:
    change = counter_change("test", "total", _counter6(success=0, error_total=2, error_map={"500": 2}, identifier="test"))
    assert "$min" not in change
    assert change["$inc"]["test.total.errormap.500"] == 2
    assert change["$inc"]["test.total.errortotal"] == 2
    assert change["$set"]["test.total.identifier"] == "test"
    assert change["$max"] == {"test.total.maxlatency": 100, "test.total.maxupstreamlatency": 110}


def test_case06_counter_update_without_parent() -> None:
    change = counter_change("", "noname", _counter6(success=0, error_total=2, error_map={"500": 2}))
    keys = [k for ops in change.values() for k in ops]
    assert keys and all(k.startswith("noname.") for k in keys)


# --------------------------------------------------------------------------- 7. AsChange


def _agg7(**dims: Any) -> OrgAggregate:
    return OrgAggregate(org_id="testorg", timestamp=T, expire_at=T, time_id=TimeID.of(T), last_time=T, **dims)


def _zero_set(prefix: str, identifier: str = "", human: str = "") -> dict[str, Any]:
    return {
        f"{prefix}bytesin": 0,
        f"{prefix}bytesout": 0,
        f"{prefix}closedconnections": 0,
        f"{prefix}openconnections": 0,
        f"{prefix}humanidentifier": human,
        f"{prefix}identifier": identifier,
        f"{prefix}lasttime": T,
    }


_DOC_SET = {
    "expireAt": T,
    "lasttime": T,
    "timestamp": T,
    "timeid.day": 4,
    "timeid.hour": 10,
    "timeid.month": 4,
    "timeid.year": 2023,
}


def test_case07_as_change_versions_no_errors() -> None:
    def version() -> Counter:
        return Counter(
            hits=1,
            success=1,
            total_latency=100,
            total_upstream_latency=200,
            total_request_time=200,
            min_upstream_latency=20,
            min_latency=10,
            max_upstream_latency=100,
            max_latency=100,
            last_time=T,
        )

    agg = _agg7(
        versions={"v1": version(), "v2": version()},
        total=Counter(
            hits=2,
            success=2,
            total_latency=200,
            total_request_time=200,
            max_upstream_latency=100,
            max_latency=100,
            min_upstream_latency=20,
            min_latency=10,
            total_upstream_latency=400,
            last_time=T,
        ),
    )
    inc: dict[str, Any] = {
        "total.hits": 2,
        "total.success": 2,
        "total.errortotal": 0,
        "total.totallatency": 200,
        "total.totalupstreamlatency": 400,
        "total.totalrequesttime": 200.0,
    }
    mins: dict[str, Any] = {"total.minlatency": 10, "total.minupstreamlatency": 20}
    maxs: dict[str, Any] = {"total.maxlatency": 100, "total.maxupstreamlatency": 100}
    sets: dict[str, Any] = {**_DOC_SET, **_zero_set("total.")}
    for v in ("v1", "v2"):
        p = f"versions.{v}."
        inc.update(
            {
                p + "errortotal": 0,
                p + "hits": 1,
                p + "success": 1,
                p + "totallatency": 100,
                p + "totalrequesttime": 200.0,
                p + "totalupstreamlatency": 200,
            }
        )
        mins.update({p + "minlatency": 10, p + "minupstreamlatency": 20})
        maxs.update({p + "maxlatency": 100, p + "maxupstreamlatency": 100})
        sets.update(_zero_set(p))
    assert as_change(agg) == {"$inc": inc, "$set": sets, "$max": maxs, "$min": mins}


def test_case07_as_change_all_error_counter_gets_no_min() -> None:
    agg = _agg7(
        apiid={
            "api1": Counter(
                hits=3,
                error_total=3,
                total_latency=100,
                total_upstream_latency=200,
                total_request_time=200,
                min_upstream_latency=20,
                min_latency=10,
                max_upstream_latency=100,
                max_latency=100,
                error_map={"404": 1, "500": 2},
                last_time=T,
            ),
            "api2": Counter(
                hits=1,
                success=1,
                total_latency=100,
                total_upstream_latency=200,
                total_request_time=200,
                min_upstream_latency=20,
                min_latency=10,
                max_upstream_latency=100,
                max_latency=100,
                last_time=T,
            ),
        },
        total=Counter(
            hits=4,
            success=1,
            error_total=3,
            total_latency=200,
            total_request_time=200,
            max_upstream_latency=100,
            max_latency=100,
            min_upstream_latency=20,
            min_latency=10,
            total_upstream_latency=400,
            error_map={"404": 1, "500": 2},
            last_time=T,
        ),
    )
    change = as_change(agg)
    assert change["$min"] == {
        "total.minlatency": 10,
        "total.minupstreamlatency": 20,
        "apiid.api2.minlatency": 10,
        "apiid.api2.minupstreamlatency": 20,
    }
    assert change["$inc"] == {
        "total.hits": 4,
        "total.success": 1,
        "total.errortotal": 3,
        "total.totallatency": 200,
        "total.totalupstreamlatency": 400,
        "total.totalrequesttime": 200.0,
        "total.errormap.404": 1,
        "total.errormap.500": 2,
        "apiid.api1.hits": 3,
        "apiid.api1.success": 0,
        "apiid.api1.errortotal": 3,
        "apiid.api1.totallatency": 100,
        "apiid.api1.totalupstreamlatency": 200,
        "apiid.api1.totalrequesttime": 200.0,
        "apiid.api1.errormap.404": 1,
        "apiid.api1.errormap.500": 2,
        "apiid.api2.hits": 1,
        "apiid.api2.success": 1,
        "apiid.api2.totallatency": 100,
        "apiid.api2.totalupstreamlatency": 200,
        "apiid.api2.totalrequesttime": 200.0,
        "apiid.api2.errortotal": 0,
    }
    assert change["$max"] == {
        "total.maxlatency": 100,
        "total.maxupstreamlatency": 100,
        "apiid.api1.maxlatency": 100,
        "apiid.api1.maxupstreamlatency": 100,
        "apiid.api2.maxlatency": 100,
        "apiid.api2.maxupstreamlatency": 100,
    }
    assert change["$set"] == {**_DOC_SET, **_zero_set("total."), **_zero_set("apiid.api1."), **_zero_set("apiid.api2.")}


# --------------------------------------------------------------------------- 8. AsTimeUpdate


def test_case08_as_time_update() -> None:
    def stored_counter() -> dict[str, Any]:
        return {
            "hits": 3,
            "success": 0,
            "errortotal": 3,
            "totallatency": 300,
            "totalupstreamlatency": 600,
            "lasttime": T,
            "errormap": {"404": 1, "500": 2},
        }

    doc = {
        "orgid": "testorg",
        "keyendpoints": {"apikey1": {"/get": stored_counter()}},
        "oauthendpoints": {"oauthid1": {"/get": stored_counter()}},
        "apiendpoints": {"/get": stored_counter()},
        "total": {
            **stored_counter(),
            "totalrequesttime": 300.0,
            "bytesin": 0,
            "bytesout": 0,
            "openconnections": 0,
            "closedconnections": 0,
            "humanidentifier": "",
            "identifier": "",
            "minlatency": 10,
            "maxlatency": 100,
            "minupstreamlatency": 20,
            "maxupstreamlatency": 100,
        },
    }
    errorlist = [{"code": "404", "count": 1}, {"code": "500", "count": 2}]
    entry = {
        "hits": 3,
        "success": 0,
        "errortotal": 3,
        "requesttime": 0.0,
        "totalrequesttime": 0.0,
        "identifier": "",
        "humanidentifier": "",
        "lasttime": T,
        "openconnections": 0,
        "closedconnections": 0,
        "bytesin": 0,
        "bytesout": 0,
        "maxupstreamlatency": 0,
        "minupstreamlatency": 0,
        "totalupstreamlatency": 600,
        "upstreamlatency": 200.0,
        "maxlatency": 0,
        "minlatency": 0,
        "totallatency": 300,
        "latency": 100.0,
        "errormap": {"404": 1, "500": 2},
        "errorlist": errorlist,
    }
    expected: dict[str, Any] = {}
    for p in ("apiendpoints./get.", "keyendpoints.apikey1./get.", "oauthendpoints.oauthid1./get."):
        expected.update({p + "errorlist": errorlist, p + "latency": 100.0, p + "requesttime": 0.0, p + "upstreamlatency": 200.0})
    expected.update(
        {
            "lists.apiendpoints": [entry],
            "lists.apiid": [],
            "lists.apikeys": [],
            "lists.endpoints": [],
            "lists.errors": [],
            "lists.geo": [],
            "lists.oauthids": [],
            "lists.tags": [],
            "lists.versions": [],
            "lists.keyendpoints.apikey1": [entry],
            "lists.oauthendpoints.oauthid1": [entry],
            "total.errorlist": errorlist,
            "total.latency": 100.0,
            "total.requesttime": 100.0,
            "total.upstreamlatency": 200.0,
        }
    )
    assert as_time_update(doc) == {"$set": expected}


# --------------------------------------------------------------------------- 9. latency setter


def test_case09_latency_averages() -> None:
    c = Counter(hits=2, total_latency=100, total_upstream_latency=200)
    c.refresh_averages()
    assert (c.latency, c.upstream_latency) == (50.0, 100.0)
    c = Counter(hits=0, total_latency=200, total_upstream_latency=400)
    c.refresh_averages()
    assert (c.latency, c.upstream_latency) == (0.0, 0.0)
    update = as_time_update({"total": {"hits": 0, "totallatency": 200, "totalupstreamlatency": 400}})["$set"]
    assert (update["total.latency"], update["total.upstreamlatency"]) == (0.0, 0.0)


# --------------------------------------------------------------------------- 10. SQL values


T2019 = datetime(2019, 1, 1, 0, 0, tzinfo=UTC)


def _sql_rec(request_time: int, code: int, total: int, upstream: int, ts: datetime = T2019) -> Record:
    return Record(
        org_id="1",
        api_id="api1",
        timestamp=ts,
        request_time=request_time,
        response_code=code,
        latency_total=total,
        latency_upstream=upstream,
    )


def test_case10_sql_aggregate_values() -> None:
    batch1 = [
        _sql_rec(10, 200, 10, 10),
        _sql_rec(10, 500, 10, 10),
        _sql_rec(10, 200, 10, 10),
        _sql_rec(20, 200, 20, 20),
        _sql_rec(20, 500, 20, 30),
    ]
    tables = build_rows(batch1)
    assert list(tables) == ["tyk_aggregated"]
    rows = tables["tyk_aggregated"]
    assert sorted((r.dimension, r.dimension_value) for r in rows) == [("", "total"), ("apiid", "api1"), ("errors", "500")]
    api = next(r for r in rows if r.dimension == "apiid")
    assert api.id == row_id(1546300800, "1", "apiid", "api1") == b"15463008001apiidapi1".hex()
    assert api.timestamp == 1546300800
    assert (api.counter_hits, api.counter_success, api.counter_error, api.code_500) == (5, 3, 2, 2)
    assert (api.counter_request_time, api.counter_total_request_time) == (14.0, 70.0)
    assert (api.counter_latency, api.counter_total_latency) == (14.0, 70)
    assert (api.counter_upstream_latency, api.counter_total_upstream_latency) == (16.0, 80)
    assert (api.counter_max_latency, api.counter_min_upstream_latency) == (20, 10)
    assert api.counter_last_time == T2019

    table: dict[str, AggregateRow] = {}
    upsert(table, rows)
    later = T2019 + timedelta(minutes=10)
    upsert(table, build_rows([_sql_rec(10, 200, 10, 5, later), _sql_rec(10, 500, 30, 10, later)])["tyk_aggregated"])
    assert len(table) == 3
    api = next(r for r in table.values() if r.dimension == "apiid")
    assert (api.counter_hits, api.counter_success, api.counter_error, api.code_500) == (7, 4, 3, 3)
    assert api.counter_request_time == 12.857142857142858
    assert api.counter_total_request_time == 90
    assert api.counter_latency == 15.714285714285714
    assert api.counter_total_latency == 110
    assert api.counter_upstream_latency == 13.571428571428571
    assert api.counter_total_upstream_latency == 95
    assert (api.counter_max_latency, api.counter_min_upstream_latency) == (30, 5)
    assert api.counter_last_time == later
    total = next(r for r in table.values() if r.dimension == "")
    assert total.counter_hits == 7


# --------------------------------------------------------------------------- 11. SQL hourly rows


def test_case11_sql_hourly_rows() -> None:
    def three(ts: datetime) -> list[Record]:
        return [Record(org_id="1", api_id="api1", response_code=0, timestamp=ts) for _ in range(3)]

    table: dict[str, AggregateRow] = {}
    for expected_total in (3, 6, 9):
        upsert(table, build_rows(three(T2019))["tyk_aggregated"])
        assert len(table) == 2
        total = next(r for r in table.values() if r.dimension == "")
        assert total.counter_hits == expected_total
        assert (total.counter_success, total.counter_error) == (0, 0)
    next_hour = T2019 + timedelta(hours=1)
    upsert(table, build_rows(three(next_hour))["tyk_aggregated"])
    assert len(table) == 4
    new_total = next(r for r in table.values() if r.dimension == "" and r.timestamp == 1546300800 + 3600)
    assert new_total.counter_hits == 3
    assert not any(r.dimension == "errors" for r in table.values())


# --------------------------------------------------------------------------- 12. SQL sharding


def test_case12_sql_sharding_rows_per_day() -> None:
    day1, day2, day3 = T2019, T2019 + timedelta(days=1), T2019 + timedelta(days=2)
    records = [Record(org_id="1", response_code=c, timestamp=day1) for c in (500, 400, 451, 200)]
    records += [
        Record(org_id="1", api_id="1", response_code=404, timestamp=day2),
        Record(org_id="1", api_id="1", response_code=404, timestamp=day2),
        Record(org_id="1", api_id="2", response_code=401, timestamp=day2),
        Record(org_id="1", api_id="2", response_code=401, timestamp=day3),
    ]
    tables = build_rows(records, sharding=True)
    assert {t: len(rows) for t, rows in tables.items()} == {
        "tyk_aggregated_20190101": 4,
        "tyk_aggregated_20190102": 5,
        "tyk_aggregated_20190103": 3,
    }
    assert table_name(day2) == "tyk_aggregated_20190102"
    assert sorted(r.dimension_value for r in tables["tyk_aggregated_20190101"]) == ["400", "451", "500", "total"]


# --------------------------------------------------------------------------- 13. ignore_aggregations


def test_case13_ignore_aggregations_across_pumps() -> None:
    now = datetime(2024, 2, 3, 14, 25, 10, tzinfo=UTC)
    keys1 = [Record(api_id="api1", org_id="123", timestamp=now, api_key="apikey1", request_time=100) for _ in range(2)]
    keys2 = [Record(api_id="api2", org_id="123", timestamp=now, api_key="apikey2", request_time=200) for _ in range(2)]
    collections = {name: FakeCollection() for name in ("z_tyk_analyticz_aggregate_123", MIXED_COLLECTION)}

    def pump_write(records: list[Record], ignore: list[str]) -> None:
        clock = BucketClock(60)
        for agg in aggregate_records(records, clock).values():
            agg = discard_aggregations(agg, ignore)
            for name in collection_names(agg.org_id, use_mixed_collection=True):
                write_aggregate(collections[name], agg)

    pump_write(keys1, ["apikeys"])
    pump_write(keys2, [])
    pump_write(keys1, ["apikeys"])

    for collection in collections.values():
        (doc,) = collection.docs.values()
        assert doc["timestamp"] == datetime(2024, 2, 3, 14, 0, tzinfo=UTC)
        assert doc["total"]["hits"] == 6
        assert doc["total"]["totalrequesttime"] == 800.0
        assert doc["total"]["requesttime"] == pytest.approx(800.0 / 6.0)
        assert list(doc["apikeys"]) == ["apikey2"]
        assert doc["apikeys"]["apikey2"]["hits"] == 2
        assert [(e["identifier"], e["hits"]) for e in doc["lists"]["apikeys"]] == [("apikey2", 2)]
        assert doc["apiid"]["api1"]["hits"] == 4


# --------------------------------------------------------------------------- 14. aggregation_time


@pytest.mark.parametrize(("aggregation_time", "docs"), [(60, 3), (30, 4), (15, 6), (7, 4), (3, 8), (1, 10)])
def test_case14_aggregation_time_document_count(aggregation_time: int, docs: int) -> None:
    clock = BucketClock(aggregation_time)
    collection = FakeCollection()
    now = datetime(2024, 3, 1, 10, 17, 23, 500000, tzinfo=UTC)
    for _ in range(docs):
        record = Record(api_id="api1", org_id="123", timestamp=now, api_key="apikey1")
        for _ in range(aggregation_time):
            for agg in aggregate_records([record], clock).values():
                write_aggregate(collection, discard_aggregations(agg, ["apikeys"]))
        now += timedelta(minutes=aggregation_time)
    assert len(collection.docs) == docs
    assert sum(d["total"]["hits"] for d in collection.docs.values()) == docs * aggregation_time


# --------------------------------------------------------------------------- 15. self-healing


@pytest.mark.parametrize(("before", "after"), [(60, 30), (15, 7), (1, 1)])
def test_case15_halving(before: int, after: int) -> None:
    assert halve_aggregation_time(before) == after


@pytest.mark.parametrize(
    ("message", "enabled", "aggregation_time", "expected"),
    [
        ("random error", True, 60, False),
        ("Request size is too large", True, 60, True),
        ("Size must be between 0 and", True, 60, True),
        ("Resulting document after update is larger than", True, 60, True),
        ("write failed: Size must be between 0 and 16793600(16MB)", True, 15, True),
        ("Size must be between 0 and", False, 60, False),
        ("Size must be between 0 and", True, 1, False),
    ],
)
def test_case15_should_self_heal(message: str, enabled: bool, aggregation_time: int, expected: bool) -> None:
    assert should_self_heal(message, enabled=enabled, aggregation_time=aggregation_time) is expected


def test_case15_reset_clock_opens_new_bucket_at_record_minute() -> None:
    clock = BucketClock(60)
    clock.aggregation_time = halve_aggregation_time(clock.aggregation_time)
    clock.seed(datetime(2024, 1, 1, 9, 0, tzinfo=UTC))
    clock.reset()
    ts = datetime(2024, 1, 1, 9, 12, 40, tzinfo=UTC)
    assert clock.bucket_for(ts) == datetime(2024, 1, 1, 9, 12, tzinfo=UTC)
    assert clock.bucket_for(ts + timedelta(minutes=29)) == datetime(2024, 1, 1, 9, 12, tzinfo=UTC)
    assert clock.bucket_for(ts + timedelta(minutes=30)) == datetime(2024, 1, 1, 9, 42, tzinfo=UTC)
