"""One INFO line per purge cycle that did work, at most one every few seconds.

Tyk logs every purge; an operator following the pump's log wants the same heartbeat without a
flood from a busy pump. The line is computed from the self-metrics (the one source of the
numbers), as deltas since the last line: a quiet cycle logs nothing, and the cycles between two
lines of a busy pump are summed into the next one, so no work goes unreported.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from pump.telemetry.metrics import Metrics

log = logging.getLogger("pump.purge")

#: Counters reported per pump, by the name their field has in the log line.
PER_PUMP = {
    "written": "pump_records_delivered_total",
    "parked": "pump_records_parked_total",
    "deadlettered": "pump_records_deadlettered_total",
}


class PurgeLog:
    def __init__(
        self, metrics: Metrics, pumps: Iterable[str], sources: Iterable[str], every: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.metrics = metrics
        self.pumps = list(pumps)
        self.sources = list(sources)
        self.every = every
        self.clock = clock
        self._last_at: float | None = None
        self._cycles = 0
        self._busy_seconds = 0.0
        self._seen = self._snapshot()

    def _value(self, name: str, labels: dict[str, str]) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0

    def _snapshot(self) -> dict[str, float]:
        snap = {"claimed": sum(self._value("pump_records_claimed_total", {"source": s}) for s in self.sources)}
        snap["undecodable"] = sum(self._value("pump_records_undecodable_total", {"source": s}) for s in self.sources)
        for pump in self.pumps:
            for field, metric in PER_PUMP.items():
                snap[f"{field}:{pump}"] = self._value(metric, {"pump": pump})
        return snap

    def after_cycle(self, seconds: float) -> None:
        """Called when a purge cycle ends, with how long it took."""
        self._cycles += 1
        self._busy_seconds += seconds
        now = self.clock()
        if self._last_at is not None and now - self._last_at < self.every:
            return
        snap = self._snapshot()
        delta = {k: int(snap[k] - self._seen.get(k, 0.0)) for k in snap}
        if not any(delta.values()):
            self._cycles, self._busy_seconds = 0, 0.0
            return
        fields: dict[str, object] = {"claimed": delta["claimed"]}
        for field in PER_PUMP:
            per = {p: delta[f"{field}:{p}"] for p in self.pumps if delta[f"{field}:{p}"]}
            fields[field] = ",".join(f"{p}:{n}" for p, n in per.items()) if per else "0"
        fields["undecodable"] = delta["undecodable"]
        fields["backlog"] = int(sum(self._value("pump_source_backlog_records", {"source": s}) for s in self.sources))
        fields["parked_backlog"] = int(sum(self._value("pump_backlog_records", {"pump": p}) for p in self.pumps))
        fields["cycles"] = self._cycles
        fields["duration_s"] = round(self._busy_seconds, 3)
        log.info("Purged.", extra=fields)
        self._seen, self._last_at = snap, now
        self._cycles, self._busy_seconds = 0, 0.0
