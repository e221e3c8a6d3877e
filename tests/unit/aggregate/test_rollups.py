"""Rollup and WSO2 summary rows, pure: building every granularity at once (which reuses the
aggregates of a finer granularity when the buckets group the batch the same way) gives exactly the
rows of building each granularity on its own; and the Python merge rule of the WSO2 rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pump.aggregate.rollups import GRANULARITIES, rollup_rows
from pump.aggregate.wso2 import BY_NAME, merge, summary_rows
from pump.record import Record

OPTIONS = {"track_all_paths": True, "ignore_tag_prefixes": (), "extra_dimensions": ("eventkinds",)}


def batch(start: datetime, step: timedelta, n: int = 40) -> list[Record]:
    return [
        Record(org_id=f"o{i % 2}", api_id=f"a{i % 3}", api_key=f"k{i % 5}", alias="al", response_code=(200, 500, 429, 404)[i % 4],
               request_time=i, latency_total=i, latency_upstream=i // 2, latency_gateway=i - i // 2, path=f"/p{i % 4}", method="GET",
               host="h", timestamp=start + step * i, geo_country_iso_code="DE" if i % 2 else "", user_agent="curl/8")
        for i in range(n)
    ]  # fmt: skip


CASES = {
    "seconds apart (every coarser level reuses)": batch(datetime(2024, 5, 5, 10, 0, 1, tzinfo=UTC), timedelta(seconds=1)),
    "minutes apart": batch(datetime(2024, 5, 5, 10, 0, 1, tzinfo=UTC), timedelta(minutes=7)),
    "across a year end": batch(datetime(2023, 12, 31, 23, 50, tzinfo=UTC), timedelta(minutes=1)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_all_rollups_at_once_equal_each_alone(name: str) -> None:
    records = CASES[name]
    together = rollup_rows(records, GRANULARITIES, OPTIONS)
    alone: dict[str, object] = {}
    for g in GRANULARITIES:
        alone.update(rollup_rows(records, [g], OPTIONS))
    assert together == alone
    assert set(together) == {f"tyk_aggregated_{g}" for g in GRANULARITIES}


@pytest.mark.parametrize("name", list(CASES))
def test_all_wso2_granularities_at_once_equal_each_alone(name: str) -> None:
    records = CASES[name]
    together = summary_rows(records, GRANULARITIES)
    alone: dict[str, object] = {}
    for g in GRANULARITIES:
        alone.update(summary_rows(records, [g]))
    assert together == alone
    assert len(together) == 9 * 5 + 1


def test_wso2_merge_rules() -> None:
    table = BY_NAME["ApiFaultyInvocationAgg"]
    names = [c.name for c in table.columns]
    stored = dict.fromkeys(names)
    stored.update(AGG_TIMESTAMP=1, AGG_EVENT_TIMESTAMP=1, apiContext="c", applicationId="a", hostname="h", AGG_COUNT=2,
                  requestTimestamp=50, AGG_LAST_EVENT_TIMESTAMP=50, apiName="old", applicationName="app")  # fmt: skip
    incoming = dict(stored, AGG_COUNT=3, requestTimestamp=40, AGG_LAST_EVENT_TIMESTAMP=60, apiName="new", applicationName=None)
    out = dict(zip(names, merge(table, list(stored.values()), list(incoming.values())), strict=True))
    assert (out["AGG_COUNT"], out["requestTimestamp"], out["AGG_LAST_EVENT_TIMESTAMP"]) == (5, 50, 60)
    assert (out["apiName"], out["applicationName"], out["regionalID"]) == ("new", "app", None)


def test_merged_aggregates_leave_the_document_sequential_writes_leave() -> None:
    """``publish_interval`` on Mongo: one update of the merged aggregates of several batches gives
    the document that updating batch after batch gives (the Mongo update simulator)."""
    from pump.aggregate import aggregate_records, hour_floor
    from pump.aggregate.merge import merge_aggregates
    from tests.unit.aggregate.mongo_sim import FakeCollection, write_aggregate

    start = datetime(2024, 5, 5, 10, 0, 1, tzinfo=UTC)
    records = batch(start, timedelta(seconds=3), n=60)
    records += [Record(org_id="o0", api_id="a1", response_code=-1, network_bytes_in=99, timestamp=start + timedelta(minutes=5))]
    parts = [records[:13], records[13:14], records[14:40], [r for r in records[40:] if r.response_code >= 400], records[40:]]
    sequential, merged = FakeCollection(), FakeCollection()
    per_batch = [aggregate_records(p, hour_floor, **OPTIONS) for p in parts]
    for aggs in per_batch:
        for agg in aggs.values():
            write_aggregate(sequential, agg)
    for org in ("o0", "o1"):
        write_aggregate(merged, merge_aggregates([aggs[org] for aggs in per_batch if org in aggs]))
    # Tyk's lists.*.requesttime is the average as it stood *before* the write (Go leaves the previous
    # value there): written once per flush, it lags one flush instead of one batch. All else is equal.
    assert without_list_request_times(merged.docs) == without_list_request_times(sequential.docs)
    assert merged.docs != sequential.docs  # only those differ (the check above is not vacuous)
    assert len(merged.docs) == 2


def without_list_request_times(docs: dict[Any, Any]) -> dict[Any, Any]:
    import copy

    out = copy.deepcopy(docs)
    for doc in out.values():
        stack = [doc["lists"]]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                stack.extend(node.values())
            elif isinstance(node, list):
                for entry in node:
                    entry.pop("requesttime", None)
    return out
