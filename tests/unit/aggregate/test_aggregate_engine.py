"""Engine behaviour beyond the golden cases: sanitising, keys, skipping, minimums, buckets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pump.aggregate import BucketClock, aggregate_records, as_change, build_rows, hour_floor, minute_floor
from pump.aggregate.engine import api_endpoint_key, is_tag_ignored, path_hash, version_key
from pump.aggregate.model import DIMENSIONS, iter_dimensions
from pump.record import Record

T = datetime(2024, 1, 15, 13, 45, 12, tzinfo=UTC)
API = "727dad853a8a45f64ab981154d1ffdad"


def rec(**fields: Any) -> Record:
    fields.setdefault("org_id", "org1")
    fields.setdefault("timestamp", T)
    fields.setdefault("response_code", 200)
    return Record(**fields)


def one(records: list[Record], **kw: Any):
    aggs = aggregate_records(records, hour_floor, **kw)
    assert len(aggs) == 1
    return next(iter(aggs.values()))


# --------------------------------------------------------------------------- sanitising


def test_endpoint_dots_become_literal_u2e() -> None:
    agg = one([rec(api_id=API, path="/files/report.v1.pdf", track_path=True)])
    assert list(agg.endpoints) == ["/files/report\\u2ev1\\u2epdf"]
    counter = agg.endpoints["/files/report\\u2ev1\\u2epdf"]
    assert counter.identifier == counter.human_identifier == "/files/report.v1.pdf"
    assert len("\\u2e") == 4
    assert "endpoints./files/report\\u2ev1\\u2epdf.hits" in as_change(agg)["$inc"]


def test_tags_trimmed_dots_removed_and_key_tags_skipped() -> None:
    agg = one([rec(tags=["  team.alpha  ", "key-abc123", "org-org1", "\tx.y.z\n"])])
    assert list(agg.tags) == ["teamalpha", "org-org1", "xyz"]
    assert agg.tags["teamalpha"].identifier == agg.tags["teamalpha"].human_identifier == "teamalpha"


def test_ignore_tag_prefix_list_tests_the_untrimmed_tag() -> None:
    agg = one(
        [rec(tags=["x-request-1", "x-request-2", " x-request-3", "keep"])],
        ignore_tag_prefixes=["x-request"],
    )
    # " x-request-3" does not start with the prefix before trimming, so Tyk keeps it.
    assert list(agg.tags) == ["x-request-3", "keep"]
    assert is_tag_ignored("key-1") and is_tag_ignored("abc", ["a"]) and not is_tag_ignored(" key-1")


def test_duplicate_tags_in_one_record_count_twice_like_tyk() -> None:
    agg = one([rec(tags=["a.b", "ab"])])
    assert agg.tags["ab"].hits == 2
    assert agg.total.hits == 1


def test_dots_in_api_keys_are_not_escaped() -> None:
    agg = one([rec(api_key="abc.def")])
    assert "apikeys.abc.def.hits" in as_change(agg)["$inc"]


# --------------------------------------------------------------------------- dimension keys


def test_reference_dimension_key_examples() -> None:
    assert version_key(API, "Non Versioned") == "NzI3ZGFkODUzYThhNDVmNjRhYjk4MTE1NGQxZmZkYWQ6Tm9uIFZlcnNpb25lZA"
    assert path_hash(API, "/users/42") == "NzI3ZGFkODUzYThhNDVmNjRhYjk4MTE1NGQxZmZkYWQ6L3VzZXJzLzQy"
    assert api_endpoint_key(API, "Non Versioned", "/users/42") == f"{API}:Non Versioned:/users/42".encode().hex()


def test_every_dimension_from_one_tracked_record() -> None:
    record = rec(
        api_id=API,
        api_name="Users API",
        api_version="Non Versioned",
        api_key="00000000",
        alias="ada",
        oauth_id="client-1",
        geo_country_iso_code="GB",
        path="/users/42",
        track_path=True,
        response_code=404,
        tags=["blue"],
    )
    agg = one([record])
    h = "NzI3ZGFkODUzYThhNDVmNjRhYjk4MTE1NGQxZmZkYWQ6L3VzZXJzLzQy"
    hexkey = f"{API}:Non Versioned:/users/42".encode().hex()
    got = [(d, v, c.identifier, c.human_identifier) for d, v, c in iter_dimensions(agg)]
    assert got == [
        ("apiid", API, API, "Users API"),
        ("errors", "404", "404", ""),
        ("versions", "NzI3ZGFkODUzYThhNDVmNjRhYjk4MTE1NGQxZmZkYWQ6Tm9uIFZlcnNpb25lZA", "Non Versioned", "Non Versioned"),
        ("apikeys", "00000000", "00000000", "ada"),
        ("oauthids", "client-1", "client-1", ""),
        ("geo", "GB", "GB", "GB"),
        ("tags", "blue", "blue", "blue"),
        ("endpoints", "/users/42", "/users/42", "/users/42"),
        ("keyendpoints", f"00000000.{h}", h, h),
        ("oauthendpoints", f"client-1.{h}", h, h),
        ("apiendpoints", hexkey, hexkey, "/users/42"),
        ("", "total", "", ""),
    ]
    assert [d for d, _, _ in iter_dimensions(agg)][:-1] == list(DIMENSIONS)


def test_untracked_paths_skip_endpoint_dimensions_unless_track_all_paths() -> None:
    record = rec(api_id=API, api_key="k", oauth_id="o", path="/x", track_path=False)
    agg = one([record])
    assert not (agg.endpoints or agg.apiendpoints or agg.keyendpoints or agg.oauthendpoints)
    agg = one([record], track_all_paths=True)
    assert agg.endpoints and agg.apiendpoints and agg.keyendpoints["k"] and agg.oauthendpoints["o"]
    assert record.track_path is False  # the record itself is not modified


def test_api_key_human_identifier_is_latest_alias() -> None:
    agg = one([rec(api_key="k", alias="first"), rec(api_key="k", alias="second")])
    assert agg.apikeys["k"].human_identifier == "second"


def test_success_errors_and_other_codes() -> None:
    agg = one([rec(api_id="a", response_code=c) for c in (200, 201, 301, 100, 0, 400, 404, 500)])
    c = agg.apiid["a"]
    assert (c.hits, c.success, c.error_total) == (8, 2, 3)
    assert c.error_map == {"400": 1, "404": 1, "500": 1}
    assert list(agg.errors) == ["400", "404", "500"]


# --------------------------------------------------------------------------- -1 (network only)


def test_network_only_records() -> None:
    net = dict(
        response_code=-1,
        api_id="api1",
        api_name="API One",
        api_key="key1",
        tags=["t"],
        network_open_connections=2,
        network_closed_connections=1,
        network_bytes_in=100,
        network_bytes_out=250,
        latency_total=99,
    )
    agg = one([rec(**net), rec(**net)])
    total = agg.total
    assert (total.hits, total.open_connections, total.closed_connections) == (0, 4, 2)
    assert (total.bytes_in, total.bytes_out, total.max_latency) == (200, 500, 0)
    api = agg.apiid["api1"]
    assert (api.hits, api.bytes_in, api.bytes_out, api.open_connections) == (0, 200, 500, 0)
    assert (api.identifier, api.human_identifier) == ("api1", "API One")
    assert not (agg.apikeys or agg.tags or agg.errors)
    # Mongo: connection/byte counters are $set, and no $min for a counter without hits.
    change = as_change(agg)
    assert change["$set"]["total.bytesin"] == 200
    assert change["$set"]["apiid.api1.bytesout"] == 500
    assert "$min" not in change


def test_network_record_without_api_only_touches_total() -> None:
    agg = one([rec(response_code=-1, network_bytes_in=5)])
    assert agg.total.bytes_in == 5 and not agg.apiid


def test_first_hit_after_network_record_initialises_minimums() -> None:
    agg = one(
        [
            rec(response_code=-1, api_id="api1", network_bytes_in=10),
            rec(api_id="api1", latency_total=40, latency_upstream=30),
            rec(api_id="api1", latency_total=70, latency_upstream=60),
        ]
    )
    api = agg.apiid["api1"]
    assert (api.hits, api.bytes_in) == (2, 10)
    assert (api.min_latency, api.max_latency, api.min_upstream_latency, api.max_upstream_latency) == (40, 70, 30, 60)


# --------------------------------------------------------------------------- skipping


def test_graph_mcp_and_orgless_records_are_skipped() -> None:
    records = [
        rec(org_id=""),
        rec(graphql_stats={"IsGraphQL": True}),
        rec(mcp_stats={"IsMCP": True}),
        rec(graphql_stats={"IsGraphQL": False}, api_id="kept"),
    ]
    aggs = aggregate_records(records, hour_floor)
    assert list(aggs) == ["org1"]
    assert aggs["org1"].total.hits == 1 and list(aggs["org1"].apiid) == ["kept"]


# --------------------------------------------------------------------------- minimum latency


def test_dimension_min_lowered_only_by_non_error_records() -> None:
    agg = one(
        [
            rec(api_id="a", response_code=200, latency_total=50, latency_upstream=40),
            rec(api_id="a", response_code=500, latency_total=10, latency_upstream=5),
            rec(api_id="a", response_code=304, latency_total=20, latency_upstream=15),
        ]
    )
    api = agg.apiid["a"]
    assert (api.min_latency, api.min_upstream_latency) == (20, 15)
    assert (api.max_latency, api.max_upstream_latency) == (50, 40)
    # The total is stricter: after its first hit only 2xx records lower it.
    assert (agg.total.min_latency, agg.total.min_upstream_latency) == (50, 40)
    agg = one([rec(response_code=500, latency_total=10), rec(response_code=201, latency_total=30)])
    assert agg.total.min_latency == 10  # the first hit sets it, even if it is an error


def test_error_counter_minimum_comes_from_its_first_record() -> None:
    agg = one([rec(response_code=500, latency_total=30), rec(response_code=500, latency_total=5)])
    errors = agg.errors["500"]
    assert (errors.hits, errors.min_latency, errors.max_latency) == (2, 30, 30)


# --------------------------------------------------------------------------- buckets and times


def test_org_bucket_comes_from_its_first_record() -> None:
    records = [
        rec(org_id="A", timestamp=datetime(2024, 1, 1, 10, 59, 50, tzinfo=UTC)),
        rec(org_id="B", timestamp=datetime(2024, 1, 1, 11, 5, tzinfo=UTC)),
        rec(org_id="A", timestamp=datetime(2024, 1, 1, 11, 1, tzinfo=UTC)),
    ]
    aggs = aggregate_records(records, hour_floor)
    assert list(aggs) == ["A", "B"]
    a = aggs["A"]
    assert a.timestamp == datetime(2024, 1, 1, 10, 0, tzinfo=UTC)
    assert a.total.hits == 2
    assert tuple(a.time_id) == (2024, 1, 1, 10)
    assert a.last_time == a.total.last_time == datetime(2024, 1, 1, 11, 1, tzinfo=UTC)
    assert aggs["B"].timestamp == datetime(2024, 1, 1, 11, 0, tzinfo=UTC)


def test_expire_at_from_first_record() -> None:
    first, second = T + timedelta(days=7), T + timedelta(days=8)
    agg = one([rec(expire_at=first), rec(expire_at=second)])
    assert agg.expire_at == first


def test_mongo_clock_is_shared_by_orgs_in_record_order() -> None:
    clock = BucketClock(10)
    records = [
        rec(org_id="A", timestamp=datetime(2024, 1, 1, 10, 0, 30, tzinfo=UTC)),
        rec(org_id="B", timestamp=datetime(2024, 1, 1, 10, 12, tzinfo=UTC)),
        rec(org_id="C", timestamp=datetime(2024, 1, 1, 10, 15, tzinfo=UTC)),
    ]
    aggs = aggregate_records(records, clock)
    assert [a.timestamp.minute for a in aggs.values()] == [0, 12, 12]


def test_minute_buckets_keep_the_record_zone() -> None:
    from zoneinfo import ZoneInfo

    ts = datetime(2024, 7, 1, 9, 30, 45, tzinfo=ZoneInfo("Asia/Kolkata"))
    agg = next(iter(aggregate_records([rec(timestamp=ts)], minute_floor).values()))
    assert agg.timestamp == datetime(2024, 7, 1, 9, 30, tzinfo=ZoneInfo("Asia/Kolkata"))
    assert next(iter(aggregate_records([rec(timestamp=ts)], hour_floor).values())).timestamp.hour == 9


def test_counter_last_time_is_first_touching_record_as_in_tyk() -> None:
    """Issue 11: Tyk's incrementOrSetUnit never updates a dimension counter's LastTime, so it is
    the first record of the batch that touched the dimension; the total's is the last record's."""
    later = T + timedelta(seconds=30)
    agg = one([rec(api_id="a"), rec(api_id="a", timestamp=later), rec(api_id="b", timestamp=later), rec(api_id="b")])
    assert agg.apiid["a"].last_time == T
    assert agg.apiid["b"].last_time == later
    assert agg.total.last_time == T  # last record of the batch, in batch order
    assert agg.last_time == T


def test_last_time_of_an_api_counter_made_by_a_network_record() -> None:
    later = T + timedelta(seconds=30)
    agg = one([rec(api_id="a", response_code=-1), rec(api_id="a", timestamp=later)])
    assert agg.apiid["a"].last_time == T  # the -1 record touched it first (Go: year 1)


def test_averages_are_set_after_aggregation() -> None:
    agg = one([rec(api_id="a", request_time=10, latency_total=10), rec(api_id="a", request_time=25, latency_total=20)])
    api = agg.apiid["a"]
    assert (api.request_time, api.latency, agg.total.request_time) == (17.5, 15.0, 17.5)
    assert isinstance(api.total_request_time, float)


def test_same_batch_gives_identical_outputs() -> None:
    records = [
        rec(org_id=o, api_id=a, api_key=k, path=p, track_path=True, response_code=c, tags=["x", "y"])
        for o in ("o1", "o2")
        for a in ("a1", "a2")
        for k in ("k1", "k2")
        for p in ("/p", "/q.r")
        for c in (200, 404)
    ]
    first = [as_change(a) for a in aggregate_records(records, hour_floor).values()]
    second = [as_change(a) for a in aggregate_records(records, hour_floor).values()]
    assert first == second
    assert build_rows(records, sharding=True) == build_rows(records, sharding=True)


def test_new_counter_has_every_field_in_place() -> None:
    from pump.aggregate.model import Counter

    agg = one([rec(api_id="a", api_name="A", request_time=7, latency_total=9, latency_upstream=4, response_code=503)])
    assert agg.apiid["a"] == Counter(
        hits=1,
        success=0,
        error_total=1,
        request_time=7.0,
        total_request_time=7.0,
        identifier="a",
        human_identifier="A",
        last_time=T,
        max_upstream_latency=4,
        min_upstream_latency=4,
        total_upstream_latency=4,
        upstream_latency=4.0,
        max_latency=9,
        min_latency=9,
        total_latency=9,
        latency=9.0,
        error_map={"503": 1},
    )


def test_sql_row_carries_every_counter_field() -> None:
    from pump.aggregate.model import COUNTER_FIELDS, SQL_NAMES
    from pump.aggregate.sql_rows import aggregate_rows, row_as_dict

    agg = one([rec(api_id="a", api_name="A", request_time=7, latency_total=9, latency_upstream=4, response_code=503)])
    row = row_as_dict(next(r for r in aggregate_rows(agg) if r.dimension == "apiid"))
    counter = agg.apiid["a"]
    assert {SQL_NAMES[f]: row[SQL_NAMES[f]] for f in COUNTER_FIELDS} == {SQL_NAMES[f]: getattr(counter, f) for f in COUNTER_FIELDS}
    assert row["code_503"] == 1 and row["org_id"] == "org1" and row["dimension_value"] == "a"


def test_clock_window_is_absolute_time_across_dst() -> None:
    from zoneinfo import ZoneInfo

    ams = ZoneInfo("Europe/Amsterdam")
    # 2024-03-31 02:00 CET jumps to 03:00 CEST: 01:55 + 10 min of real time is 03:05 local.
    clock = BucketClock(10, last=datetime(2024, 3, 31, 1, 55, tzinfo=ams))
    assert clock.bucket_for(datetime(2024, 3, 31, 3, 4, tzinfo=ams)) == datetime(2024, 3, 31, 1, 55, tzinfo=ams)
    assert clock.bucket_for(datetime(2024, 3, 31, 3, 5, tzinfo=ams)) == datetime(2024, 3, 31, 3, 5, tzinfo=ams)
