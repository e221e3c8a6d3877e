"""The prometheus pump's pieces: meta validation, path templating, Go float text, tallies."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pump.sinks.prometheus.config import Meta
from pump.sinks.prometheus.sink import build_families
from pump.sinks.prometheus.store import Store, go_float
from pump.transforms.paths import template_path
from tests.helpers import make_record
from tests.scrape import labels, parse, value


def meta(**kw: object) -> Meta:
    return Meta.model_validate({"listen_address": ":9090", **kw})


@pytest.mark.parametrize(
    ("path", "templated"),
    [
        ("/users/42", "/users/{id}"),
        ("/users/42/orders/3f2504e0-4f89-11d3-9a0c-0305e82c3301", "/users/{id}/orders/{uuid}"),
        ("/objects/507f1f77bcf86cd799439011?x=1", "/objects/{id}"),
        ("/v2/charges", "/v2/charges"),
        ("/search", "/search"),
        ("/", "/"),
    ],
)
def test_template_path(path: str, templated: str) -> None:
    assert template_path(path) == templated


def test_go_float_matches_go_strconv_g() -> None:
    assert [go_float(x) for x in (1, 0.5, 60000, 1e6, 2.5e-5, float("inf"))] == ["1", "0.5", "60000", "1e+06", "2.5e-05", "+Inf"]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"listen_address": "9090"}, "expected host:port"),
        ({"disabled_metrics": ["tyk_http_statuss"]}, "not a built-in family"),
        ({"custom_metrics": [{"name": "x", "metric_type": "gauge"}]}, "metric_type"),
        ({"custom_metrics": [{"name": "x", "metric_type": "counter", "labels": ["apikey"]}]}, "unknown label 'apikey'"),
        ({"custom_metrics": [{"name": "tyk_latency", "metric_type": "histogram"}]}, "already the name of a built-in"),
        ({"custom_metrics": [{"name": "x", "metric_type": "counter"}, {"name": "x", "metric_type": "counter"}]}, "another custom"),
        ({"custom_metrics": [{"name": "x", "metric_type": "histogram", "buckets": [5, 1]}]}, "strictly increasing"),
        ({"custom_metrics": [{"name": "1x", "metric_type": "counter"}]}, "not a Prometheus metric name"),
    ],
)
def test_meta_refuses_what_tyk_would_skip_or_panic_on(bad: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Meta.model_validate({"listen_address": ":9090", **bad})


def test_listen_address_is_required_as_in_tyk() -> None:
    with pytest.raises(ValidationError, match="listen_address"):
        Meta.model_validate({})


def test_disabled_builtin_name_may_be_reused_and_histogram_labels_start_with_type() -> None:
    m = meta(
        disabled_metrics=["tyk_latency"],
        custom_metrics=[{"name": "tyk_latency", "metric_type": "histogram", "labels": ["api_name", "type"]}],
    )
    fams = {f.name: f for f in build_families(m)}
    assert fams["tyk_latency"].labels == ("type", "api_name")
    assert [kind for kind, _ in fams["tyk_latency"].observe] == ["total", "upstream", "gateway"]


def test_aggregate_observations_observes_the_integer_mean_once_per_label_set_per_batch() -> None:
    store = Store(build_families(meta(aggregate_observations=True)), 100, aggregate=True)
    store.add([make_record(request_time=10), make_record(request_time=25)], "b1")
    s = parse(store.render().decode())
    api = "727dad853a8a45f64ab981154d1ffdad"
    assert value(s, "tyk_latency_count", type="total", api=api) == 1
    assert value(s, "tyk_latency_sum", type="total", api=api) == 17  # (10 + 25) // 2, as Go's uint64 division
    assert value(s, "tyk_http_status", code="200", api=api) == 2, "counters are exact either way"


def test_a_retried_batch_id_counts_once_and_the_cap_counts_the_overflow() -> None:
    store = Store(build_families(meta()), 2, aggregate=False)
    records = [make_record(api_key=f"k{i}") for i in range(5)]
    store.add(records, "b1")
    store.add(records, "b1")
    s = parse(store.render().decode())
    assert sum(s["tyk_http_status_per_key"].values()) == 2
    assert value(s, "pump_prometheus_dropped_series_total", metric="tyk_http_status_per_key") == 3
    assert s["tyk_http_status"] == {labels(code="200", api="727dad853a8a45f64ab981154d1ffdad"): 5}


def test_label_values_are_escaped_and_undecodable_bytes_do_not_break_the_scrape() -> None:
    store = Store(build_families(meta(track_all_paths=True)), 100, aggregate=False)
    store.add([make_record(path='/a"b\\c\nd'), make_record(path="/x\udcff")])
    s = parse(store.render().decode())
    paths = {dict(k)["path"] for k in s["tyk_http_status_per_path"]}
    assert paths == {'/a"b\\c\nd', "/x\ufffd"}
