"""The per-purge INFO line: exact numbers, nothing for a quiet cycle, at most one line per period."""

from __future__ import annotations

import logging

import pytest

from pump.telemetry.metrics import Metrics
from pump.telemetry.purgelog import PurgeLog

SRC = "analytics-tyk-system-analytics"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    lines = [r for r in caplog.records if r.name == "pump.purge"]
    caplog.clear()
    return lines


def test_one_line_per_busy_period_with_the_cycles_summed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pump.purge")
    m, clock = Metrics(), Clock()
    for pump in ("csv", "sql"):
        m.init_pump(pump)
    m.init_source(SRC)
    log = PurgeLog(m, ["csv", "sql"], [SRC], every=5.0, clock=clock)

    log.after_cycle(0.5)  # nothing happened: no line
    assert _lines(caplog) == []

    m.records_claimed.labels(SRC).inc(5000)
    m.records_delivered.labels("csv").inc(5000)
    m.records_delivered.labels("sql").inc(4990)
    m.records_deadlettered.labels("sql").inc(10)
    m.source_backlog.labels(SRC).set(12000)
    log.after_cycle(0.25)
    (line,) = _lines(caplog)
    assert line.getMessage() == "Purged."
    assert line.claimed == 5000 and line.written == "csv:5000,sql:4990"  # type: ignore[attr-defined]
    assert line.deadlettered == "sql:10" and line.parked == "0" and line.backlog == 12000  # type: ignore[attr-defined]
    assert line.cycles == 1 and line.duration_s == 0.25  # the quiet cycle before was already reported (as nothing)  # type: ignore[attr-defined]

    # A busy pump: three cycles within the period log nothing, then one line with their sum.
    for _ in range(3):
        clock.now += 1
        m.records_claimed.labels(SRC).inc(100)
        m.records_delivered.labels("csv").inc(100)
        m.records_parked.labels("sql").inc(100)
        log.after_cycle(0.1)
    assert _lines(caplog) == []
    clock.now += 3
    log.after_cycle(0.1)
    (line,) = _lines(caplog)
    assert line.claimed == 300 and line.written == "csv:300" and line.parked == "sql:300"  # type: ignore[attr-defined]
    assert line.cycles == 4  # type: ignore[attr-defined]
