"""The self-metrics (``pump.telemetry.metrics``): series exist at 0 before the first event, and
the Redis health they carry is what ``/ready`` reports — scrubbed of secrets."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from pump import __version__
from pump.telemetry.metrics import Metrics


def test_a_pumps_series_exist_at_zero_before_anything_happens() -> None:
    registry = CollectorRegistry()
    m = Metrics(registry)
    m.init_pump("csv")
    m.init_source("analytics-tyk-system-analytics")
    for name in (
        "pump_records_delivered_total", "pump_records_failed_total", "pump_records_filtered_total",
        "pump_records_deadlettered_total", "pump_records_parked_total", "pump_retries_total",
        "pump_queue_records", "pump_failing",
    ):  # fmt: skip
        assert registry.get_sample_value(name, {"pump": "csv"}) == 0.0, name
    for name in (
        "pump_records_claimed_total",
        "pump_batches_claimed_total",
        "pump_records_decoded_total",
        "pump_records_undecodable_total",
    ):
        assert registry.get_sample_value(name, {"source": "analytics-tyk-system-analytics"}) == 0.0, name
    assert registry.get_sample_value("pump_records_delivered_total", {"pump": "other"}) is None  # only configured pumps
    assert registry.get_sample_value("pump_build_info", {"version": __version__}) == 1.0


def test_a_redis_outage_is_dated_from_its_first_failure_and_cleared_by_a_success() -> None:
    registry = CollectorRegistry()
    m = Metrics(registry)
    assert m.redis_down_since is None and not m.redis_ever_up
    m.redis_failed("Error 111 connecting to redis://pump:s3cr3t-pass@10.0.0.5:6379. Connection refused.")
    first = m.redis_down_since
    assert first is not None and registry.get_sample_value("pump_redis_up") == 0.0
    assert "s3cr3t-pass" not in m.redis_error and "Connection refused" in m.redis_error
    m.redis_failed("Timeout reading from socket")
    assert m.redis_down_since == first and m.redis_error == "Timeout reading from socket"
    m.redis_ok()
    assert m.redis_down_since is None and m.redis_error == "" and m.redis_ever_up
    assert registry.get_sample_value("pump_redis_up") == 1.0


def test_each_metrics_object_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()
    a.records_delivered.labels("x").inc(3)
    assert a.registry.get_sample_value("pump_records_delivered_total", {"pump": "x"}) == 3.0
    assert b.registry.get_sample_value("pump_records_delivered_total", {"pump": "x"}) is None
