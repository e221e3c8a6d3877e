"""SQL row/rule data and Mongo helpers: conflict rules, merging, discards, collections, tag warning."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest

from pump.aggregate import (
    BSON_NAMES,
    SQL_COLUMNS,
    SQL_NAMES,
    BucketClock,
    Merge,
    aggregate_records,
    as_change,
    as_time_update,
    build_rows,
    discard_aggregations,
    effective_aggregation_time,
    hour_floor,
    merge_row,
    update_rules,
)
from pump.aggregate.model import COUNTER_FIELDS
from pump.aggregate.mongo_update import (
    collection_names,
    common_tag_prefixes,
    org_collection,
    tag_count_warning,
    unknown_aggregation_names,
    upsert_filter,
)
from pump.aggregate.sql_rows import (
    CODE_COLUMNS,
    ON_CONFLICT,
    AggregateRow,
    day_runs,
    index_name,
    status_code_columns,
    table_name,
)
from pump.record import Record

from .mongo_sim import FakeCollection, apply_update, write_aggregate

T = datetime(2024, 1, 15, 13, 45, tzinfo=UTC)


def rec(**fields: Any) -> Record:
    fields.setdefault("org_id", "org1")
    fields.setdefault("timestamp", T)
    fields.setdefault("response_code", 200)
    return Record(**fields)


# --------------------------------------------------------------------------- names


def test_counter_name_maps_cover_every_field() -> None:
    assert set(COUNTER_FIELDS) <= set(BSON_NAMES)
    assert set(SQL_NAMES) == set(COUNTER_FIELDS)
    assert BSON_NAMES["error_total"] == "errortotal" and SQL_NAMES["error_total"] == "counter_error"
    assert [SQL_NAMES[f] for f in COUNTER_FIELDS] == [c for c in SQL_COLUMNS if c.startswith("counter_")]


# --------------------------------------------------------------------------- SQL rules


def test_conflict_rules_as_data() -> None:
    rules = {r.column: r for r in ON_CONFLICT}
    assert [r.column for r in ON_CONFLICT] == list(SQL_COLUMNS)
    kept = {c for c, r in rules.items() if r.merge is Merge.KEEP}
    assert kept == {
        "id",
        "org_id",
        "dimension",
        "dimension_value",
        "timestamp",
        "counter_identifier",
        "counter_human_identifier",
    }
    assert all(rules[c].merge is Merge.SUM for c in CODE_COLUMNS)
    for col in ("counter_open_connections", "counter_bytes_in", "counter_bytes_out", "counter_closed_connections"):
        assert rules[col].merge is Merge.SUM
    avg = rules["counter_upstream_latency"]
    assert (avg.merge, avg.total_column, avg.hits_column) == (
        Merge.AVG,
        "counter_total_upstream_latency",
        "counter_hits",
    )
    assert rules["counter_max_latency"].merge is Merge.MAX
    assert rules["counter_min_upstream_latency"].merge is Merge.MIN
    assert rules["counter_last_time"].merge is Merge.REPLACE
    assert all(r.merge is not Merge.KEEP for r in update_rules())
    assert len(update_rules()) == len(SQL_COLUMNS) - len(kept)


def test_merge_row_keeps_identity_and_handles_zero_hits() -> None:
    old = build_rows([rec(response_code=-1, api_id="a", api_name="Old", network_bytes_in=3)])["tyk_aggregated"]
    new = build_rows([rec(response_code=-1, api_id="a", api_name="New", network_bytes_in=4)])["tyk_aggregated"]
    api_old = next(r for r in old if r.dimension == "apiid")
    api_new = next(r for r in new if r.dimension == "apiid")
    merged = merge_row(api_old, api_new)
    assert merged.counter_bytes_in == 7  # summed in SQL
    assert merged.counter_hits == 0 and merged.counter_latency == 0.0
    assert merged.counter_human_identifier == "Old"
    assert isinstance(merged, AggregateRow)


def test_status_codes_own_column_wins_over_bucket() -> None:
    assert status_code_columns({"404": 2, "418": 1, "503": 1, "599": 4, "999": 1}) == {
        "code_404": 2,
        "code_4x": 1,
        "code_503": 1,
        "code_5x": 4,
    }


def test_row_codes_and_error_map_not_a_column() -> None:
    (total,) = [r for r in build_rows([rec(response_code=429), rec(response_code=418)])["tyk_aggregated"] if r.dimension == ""]
    assert (total.code_429, total.code_4x, total.code_2x, total.code_200) == (1, 1, 0, 0)
    assert "counter_error_map" not in SQL_COLUMNS


def test_rows_sorted_by_id_and_ids_unique() -> None:
    records = [rec(api_id=f"api{i}", api_key=f"k{i % 3}") for i in range(20)]
    rows = build_rows(records)["tyk_aggregated"]
    ids = [r.id for r in rows]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_runs_of_same_day_are_premerged() -> None:
    d1, d2 = datetime(2024, 1, 1, 10, tzinfo=UTC), datetime(2024, 1, 2, 10, tzinfo=UTC)
    records = [rec(timestamp=d1), rec(timestamp=d2), rec(timestamp=d1, response_code=500)]
    assert [(t, len(r)) for t, r in day_runs(records, True)] == [
        ("tyk_aggregated_20240101", 1),
        ("tyk_aggregated_20240102", 1),
        ("tyk_aggregated_20240101", 1),
    ]
    tables = build_rows(records, sharding=True)
    total = next(r for r in tables["tyk_aggregated_20240101"] if r.dimension == "")
    assert (total.counter_hits, total.counter_success, total.counter_error) == (2, 1, 1)
    assert list(day_runs(records, False)) == [("tyk_aggregated", records)]
    assert list(day_runs([], True)) == []


def test_per_minute_rows() -> None:
    records = [rec(timestamp=datetime(2024, 1, 1, 10, 1, 5, tzinfo=UTC)), rec(timestamp=datetime(2024, 1, 1, 10, 2, tzinfo=UTC))]
    (total,) = [r for r in build_rows(records, per_minute=True)["tyk_aggregated"] if r.dimension == ""]
    # One aggregate per org per batch: the bucket is the first record's minute.
    assert total.timestamp == int(datetime(2024, 1, 1, 10, 1, tzinfo=UTC).timestamp())
    assert total.counter_hits == 2


def test_nested_dimension_value_and_names() -> None:
    rows = build_rows([rec(api_id="a", api_key="k", path="/p", track_path=True)])["tyk_aggregated"]
    key_rows = [r for r in rows if r.dimension == "keyendpoints"]
    assert [r.dimension_value for r in key_rows] == ["k.YTovcA"]
    assert table_name() == "tyk_aggregated" and index_name("tyk_aggregated_20240101") == "tyk_aggregated_20240101_idx_dimension"


# --------------------------------------------------------------------------- Mongo helpers


def test_collections_and_filter() -> None:
    assert collection_names("o1", False) == ("z_tyk_analyticz_aggregate_o1",)
    assert collection_names("o1", True) == ("z_tyk_analyticz_aggregate_o1", "tyk_analytics_aggregates")
    with pytest.raises(ValueError):
        org_collection("")
    agg = next(iter(aggregate_records([rec()], hour_floor).values()))
    assert upsert_filter(agg) == {"orgid": "org1", "timestamp": datetime(2024, 1, 15, 13, tzinfo=UTC)}


def test_discard_aggregations_accepts_both_spellings_and_copies() -> None:
    record = rec(api_id="a", api_key="k", api_version="v", geo_country_iso_code="NL", path="/p", track_path=True)
    agg = next(iter(aggregate_records([record], hour_floor).values()))
    trimmed = discard_aggregations(agg, ["APIID", "keyendpoints", "ApiEndpoint", "bogus"])
    assert not trimmed.apiid and not trimmed.keyendpoints and not trimmed.apiendpoints
    assert trimmed.apikeys and trimmed.geo and trimmed.versions and trimmed.endpoints
    assert agg.apiid and agg.keyendpoints  # the original is untouched
    assert unknown_aggregation_names(["APIID", "bogus", "geo", "Geo", "GEO"]) == ["bogus", "GEO"]
    assert discard_aggregations(agg, []) is agg
    assert not any(k.startswith("apiid.") for k in as_change(trimmed)["$inc"])


def test_apply_update_helper() -> None:
    doc: dict[str, Any] = {"a": {"n": 1, "lo": 5}}
    apply_update(doc, {"$inc": {"a.n": 2, "b.c.d": 1}, "$set": {"x.y": "z"}, "$max": {"a.hi": 3}, "$min": {"a.lo": 2}})
    assert doc == {"a": {"n": 3, "lo": 2, "hi": 3}, "b": {"c": {"d": 1}}, "x": {"y": "z"}}


def test_two_step_write_merges_averages_and_lists() -> None:
    collection = FakeCollection()
    batch1 = [rec(api_id="a", request_time=10, latency_total=10, response_code=500)]
    batch2 = [rec(api_id="a", request_time=30, latency_total=50, response_code=200)]
    for batch in (batch1, batch2):
        for agg in aggregate_records(batch, BucketClock(60)).values():
            doc = write_aggregate(collection, agg)
    api = doc["apiid"]["a"]
    assert (api["hits"], api["requesttime"], api["latency"]) == (2, 20.0, 30.0)
    assert (api["minlatency"], api["maxlatency"]) == (50, 50)  # the error batch set no $min
    assert api["errorlist"] == [{"code": "500", "count": 1}]
    assert doc["lists"]["apiid"][0]["hits"] == 2 and doc["lists"]["errors"][0]["identifier"] == "500"
    assert doc["timeid"] == {"year": 2024, "month": 1, "day": 15, "hour": 13}


def test_as_time_update_tolerates_sparse_and_odd_documents() -> None:
    update = as_time_update({"apiid": {"x": {"hits": 2, "totalrequesttime": 5}, "junk": 3}, "keyendpoints": "bad"})["$set"]
    assert update["apiid.x.requesttime"] == 2.5 and update["apiid.x.errorlist"] == []
    assert [e["hits"] for e in update["lists.apiid"]] == [2]
    assert update["total.requesttime"] == 0.0
    assert not any(k.startswith("lists.keyendpoints") for k in update)


def test_errorlist_sorted_numerically() -> None:
    update = as_time_update({"total": {"hits": 3, "errormap": {"503": 1, "404": 1, "1000": 1}}})["$set"]
    assert [e["code"] for e in update["total.errorlist"]] == ["404", "503", "1000"]


# --------------------------------------------------------------------------- tags warning


def _go_common_prefixes(tags: list[str]) -> dict[str, int]:
    """Tyk's pairwise counting, written plainly, as the oracle for the fast version."""
    count: dict[str, int] = {}
    for i in range(len(tags) - 1):
        for j in range(i + 1, len(tags)):
            a, b = tags[i], tags[j]
            n = min(len(a), len(b))
            k = 0
            while k < n and a[k] == b[k]:
                k += 1
            if k == n:
                count[a[:n]] = count.get(a[:n], 0) + 1
            elif k:
                count[a[:k]] = count.get(a[:k], 0) + 1
    return count


@pytest.mark.parametrize("seed", range(8))
def test_common_tag_prefixes_match_pairwise_counting(seed: int) -> None:
    rnd = random.Random(seed)
    tags = list({"".join(rnd.choice("abc-") for _ in range(rnd.randint(1, 6))) for _ in range(60)})
    expected = sorted(_go_common_prefixes(tags).items(), key=lambda kv: (-kv[1], kv[0]))
    assert common_tag_prefixes(tags, limit=len(expected)) == [p for p, _ in expected]
    assert common_tag_prefixes(tags) == [p for p, _ in expected[:5]]


def test_common_tag_prefixes_small_inputs() -> None:
    assert common_tag_prefixes([]) == []
    assert common_tag_prefixes(["only"]) == ["only"]
    assert common_tag_prefixes(["ab", "cd"]) == []


def test_tag_count_warning_thresholds() -> None:
    doc = {"tags": {f"x-request-id-{i}": {} for i in range(12)} | {"env-prod": {}}}
    message = tag_count_warning(doc, 10)
    assert message is not None
    assert message.startswith("WARNING: Found more than 10 tag entries per document")
    assert "[x-request-id-" in message and "ignore_tag_prefix_list" in message
    assert tag_count_warning(doc, 13) is None
    assert tag_count_warning(doc, -1) is None
    assert tag_count_warning(doc, 0) is None  # 0 means the default, 1000
    assert tag_count_warning({"tags": {str(i): {} for i in range(1001)}}, None) is not None


def test_effective_aggregation_time() -> None:
    assert effective_aggregation_time(True, 30) == 1
    assert effective_aggregation_time(False, None) == 60
    assert effective_aggregation_time(False, 0) == 60
    assert effective_aggregation_time(False, 61) == 60
    assert effective_aggregation_time(False, 15) == 15
