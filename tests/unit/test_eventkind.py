"""Event kinds (issue 13 item 3): the classifier, the ``eventkinds`` aggregate dimension in SQL rows
and Mongo updates, and the ES ``event_kind_index`` names."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from pump.aggregate import aggregate_records, as_change, as_time_update, build_rows
from pump.config.model import PumpConfig
from pump.sinks.elasticsearch.config import Meta as EsMeta
from pump.sinks.elasticsearch.document import DocumentBuilder
from pump.transforms.eventkind import event_kind, event_kinds
from tests.helpers import make_record


def http(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


QUOTA = http('HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n\r\n{\n    "error": "Quota exceeded"\n}')
ORG_QUOTA = http(
    'HTTP/1.1 403 Forbidden\r\n\r\n{"error": "This organisation quota has been exceeded, please contact your API administrator"}'
)
DENIED = http('HTTP/1.1 403 Forbidden\r\n\r\n{"error": "Access to this API has been disallowed"}')


@pytest.mark.parametrize(
    ("code", "raw_response", "kind"),
    [
        (200, "", "request"),
        (201, "", "request"),
        (304, "", "request"),
        (400, "", "request"),
        (401, "", "request"),
        (404, "", "request"),
        (403, "", "request"),  # without detailed recording a quota breach cannot be told apart
        (403, DENIED, "request"),
        (403, QUOTA, "throttled"),
        (403, ORG_QUOTA, "throttled"),
        (403, 'HTTP/1.1 403 Forbidden\r\n\r\n{"error": "Quota exceeded"}', "throttled"),  # raw_response_decoded
        (429, "", "throttled"),
        (500, "", "fault"),
        (502, "", "fault"),
        (504, "", "fault"),
        (599, "", "fault"),
        (0, "", "fault"),  # no status: the connection was lost
        (-1, "", "request"),  # Tyk's network-only records are not failures
    ],
)
def test_classifier(code: int, raw_response: str, kind: str) -> None:
    assert event_kind(make_record(response_code=code, raw_response=raw_response)) == kind


def test_batch_classification_in_order() -> None:
    batch = [make_record(response_code=c) for c in (200, 429, 503, 404)]
    assert event_kinds(batch) == ["request", "throttled", "fault", "request"]


BATCH = [
    make_record(response_code=200, latency_total=10),
    make_record(response_code=201, latency_total=20),
    make_record(response_code=429, latency_total=1),
    make_record(response_code=503, latency_total=300),
    make_record(response_code=500, latency_total=100),
    make_record(response_code=-1),  # network only: in no extra dimension
]


def test_eventkinds_dimension_counts() -> None:
    agg = next(iter(aggregate_records(BATCH, extra_dimensions=["eventkinds"]).values()))
    kinds = agg.extra["eventkinds"]
    assert list(kinds) == ["request", "throttled", "fault"]
    assert {k: c.hits for k, c in kinds.items()} == {"request": 2, "throttled": 1, "fault": 2}
    assert kinds["fault"].error_total == 2 and kinds["fault"].error_map == {"503": 1, "500": 1}
    assert kinds["fault"].latency == 200.0 and kinds["request"].latency == 15.0
    assert agg.total.hits == 5


def test_without_extra_dimensions_nothing_changes() -> None:
    plain = build_rows(BATCH)
    assert {row.dimension for rows in plain.values() for row in rows} == {"", "apiid", "errors", "versions", "apikeys"}
    assert not next(iter(aggregate_records(BATCH).values())).extra


def test_sql_rows_of_eventkinds() -> None:
    (rows,) = build_rows(BATCH, extra_dimensions=["eventkinds"]).values()
    kind_rows = {r.dimension_value: r for r in rows if r.dimension == "eventkinds"}
    assert {v: (r.counter_hits, r.counter_error, r.code_500, r.code_503, r.code_429) for v, r in kind_rows.items()} == {
        "request": (2, 0, 0, 0, 0),
        "throttled": (1, 1, 0, 0, 1),
        "fault": (2, 2, 1, 1, 0),
    }
    # The Tyk rows are the same as without the option.
    (plain,) = build_rows(BATCH).values()
    assert [r for r in rows if r.dimension != "eventkinds"] == plain


def test_mongo_update_of_eventkinds() -> None:
    agg = next(iter(aggregate_records(BATCH, extra_dimensions=["eventkinds"]).values()))
    inc = as_change(agg)["$inc"]
    assert (inc["eventkinds.fault.hits"], inc["eventkinds.throttled.hits"], inc["eventkinds.request.hits"]) == (2, 1, 2)
    assert inc["eventkinds.fault.errormap.503"] == 1
    stored: dict[str, Any] = {"eventkinds": {"fault": {"hits": 2, "totallatency": 400, "errormap": {"503": 1, "500": 1}}}}
    assert as_time_update(stored)["$set"]["eventkinds.fault.latency"] == 200.0
    assert "lists.eventkinds" not in as_time_update({})["$set"]


def test_extra_dimensions_only_on_aggregate_pumps() -> None:
    from pump.config.load import validate

    with pytest.raises(Exception, match=r"pumps\.c\.extra_dimensions: only aggregate pumps"):
        validate({"pumps": {"c": {"type": "csv", "meta": {"csv_dir": "/tmp"}, "extra_dimensions": ["eventkinds"]}}})
    with pytest.raises(Exception, match="extra_dimensions"):
        PumpConfig(type="sql_aggregate", extra_dimensions=["seasons"])  # type: ignore[list-item]


def test_es_event_kind_index() -> None:
    b = DocumentBuilder(EsMeta.model_validate({"index_name": "gw", "event_kind_index": True, "rolling_index": True}))
    assert b.index_for(make_record(response_code=200)) == "gw_request-2024.01.15"
    assert b.index_for(make_record(response_code=404)) == "gw_request-2024.01.15"
    assert b.index_for(make_record(response_code=502)) == "gw_fault-2024.01.15"
    assert b.index_for(make_record(response_code=403, raw_response=QUOTA)) == "gw_throttled-2024.01.15"
    assert b.base_names() == ["gw_request", "gw_fault", "gw_throttled"]
    with pytest.raises(ValueError, match="choose one"):
        EsMeta.model_validate({"index_per_kind": True, "event_kind_index": True})
