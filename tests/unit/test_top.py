"""``pump top``'s numbers, from a real exposition of the pump's own metrics registry."""

from __future__ import annotations

from prometheus_client import generate_latest
from rich.console import Console

from pump.cli import metrics_url
from pump.config.model import Config
from pump.telemetry.metrics import Metrics
from pump.top import frame, parse


def _exposition(delivered: int, *, failing: bool = False) -> str:
    m = Metrics()
    for pump in ("csv", "sql"):
        m.init_pump(pump)
    m.init_source("analytics-tyk-system-analytics")
    m.records_claimed.labels("analytics-tyk-system-analytics").inc(delivered * 2)
    m.records_delivered.labels("csv").inc(delivered)
    m.records_delivered.labels("sql").inc(delivered // 2)
    m.queue_records.labels("csv").set(1500)
    m.backlog_records.labels("sql").set(42000)
    m.deadletter_records.labels("sql").set(7)
    m.source_backlog.labels("analytics-tyk-system-analytics").set(123456)
    m.batches_in_flight.set(3)
    m.oldest_unacked.set(95)
    m.redis_up.set(1)
    if failing:
        m.pump_failing.labels("sql").set(1)
        m.last_success.labels("sql").set(1_000_000.0)
    return generate_latest(m.registry).decode()


def _screen(renderable: object) -> str:
    console = Console(record=True, width=160, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_parse_reads_every_number_top_shows() -> None:
    snap = parse(_exposition(1000), at=10.0)
    assert snap.pumps["csv"].delivered == 1000 and snap.pumps["sql"].delivered == 500
    assert snap.pumps["csv"].queue == 1500 and snap.pumps["sql"].backlog == 42000 and snap.pumps["sql"].deadletters == 7
    assert snap.sources == {"analytics-tyk-system-analytics": 123456}
    assert (snap.claimed_total, snap.in_flight, snap.oldest_unacked, snap.redis_up) == (2000, 3, 95, 1)
    assert snap.version


def test_frame_shows_rates_between_two_scrapes() -> None:
    before, after = parse(_exposition(1000), at=10.0), parse(_exposition(5000), at=12.0)
    text = _screen(frame(before, after, "http://127.0.0.1:8083/metrics"))
    csv_row = next(line for line in text.splitlines() if line.strip().startswith("csv"))
    sql_row = next(line for line in text.splitlines() if line.strip().startswith("sql"))
    assert csv_row.split()[:5] == ["csv", "2,000", "1,500", "0", "0"]  # (5000-1000)/2 s
    assert sql_row.split()[:6] == ["sql", "1,000", "0", "42,000", "7", "ok"]
    assert "claimed 4,000/s" in text and "in flight 3 batches" in text and "oldest unacked 95s" in text
    assert "analytics-tyk-system-analytics" in text and "123,456" in text


def test_first_frame_has_no_rates_and_a_failing_pump_says_since_when_and_why() -> None:
    snap = parse(
        _exposition(10, failing=True),
        at=1_000_090.0,
        status={"pumps": {"sql": {"failing_since": 1_000_030.0, "last_error": "connection refused postgres://u:hunter22@db/x"}}},
    )
    text = _screen(frame(None, snap, "u"))
    sql_row = next(line for line in text.splitlines() if line.strip().startswith("sql"))
    assert sql_row.split()[1] == "–"
    assert "FAILING 60s" in sql_row and "connection refused" in sql_row
    assert "hunter22" not in text


def test_a_restarted_pump_shows_no_negative_rate() -> None:
    text = _screen(frame(parse(_exposition(5000), at=10.0), parse(_exposition(10), at=12.0), "u"))
    assert "-" not in next(line for line in text.splitlines() if line.strip().startswith("csv")).split()[1]


def test_default_url_follows_the_configs_listener() -> None:
    assert metrics_url(Config.model_validate({})) == "http://127.0.0.1:8083/metrics"
    cfg = Config.model_validate({"health_check_endpoint_port": 9999, "telemetry": {"health_bind": "10.1.2.3"}})
    assert metrics_url(cfg) == "http://10.1.2.3:9999/metrics"
    assert metrics_url(Config.model_validate({"telemetry": {"metrics_address": ":9090"}})) == "http://127.0.0.1:9090/metrics"
