"""Every self-metric of the pump, named in one place.

Names follow Prometheus conventions (``pump_`` prefix, base units, ``_total`` counters) and
Vector's vocabulary; labels are bounded (``pump`` and ``source`` are config-sized, never per API
or per record). The registry is passed in so tests read a fresh one. Every name here is in the
README's metrics table (a test compares the table with a real scrape).

No ``_created`` series: they doubled the exposition and no dashboard reads them (Prometheus
derives resets itself). The standard ``process_*`` (CPU, RSS, open files) and ``python_*`` (GC,
version) collectors are on, as every Go exporter has them.
"""

from __future__ import annotations

import time

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

from pump import __version__
from pump.redact import scrub

disable_created_metrics()  # type: ignore[no-untyped-call]

WRITE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self.records_claimed = Counter("pump_records_claimed", "Records claimed from Redis.", ["source"], registry=r)
        self.batches_claimed = Counter("pump_batches_claimed", "Batches claimed from Redis.", ["source"], registry=r)
        self.records_decoded = Counter("pump_records_decoded", "Records decoded.", ["source"], registry=r)
        self.records_undecodable = Counter(
            "pump_records_undecodable", "Payloads that are not Tyk records, dead-lettered.", ["source"], registry=r
        )
        self.records_delivered = Counter("pump_records_delivered", "Records written by a pump.", ["pump"], registry=r)
        self.records_failed = Counter("pump_records_failed", "Records in write attempts that failed.", ["pump"], registry=r)
        self.records_filtered = Counter("pump_records_filtered", "Records a pump's filters left out.", ["pump"], registry=r)
        self.records_deadlettered = Counter(
            "pump_records_deadlettered", "Records a pump gave up on, in its dead-letter list.", ["pump"], registry=r
        )
        self.records_parked = Counter(
            "pump_records_parked", "Records moved to a pump's own Redis backlog because it was full or failing.", ["pump"], registry=r
        )
        self.aggregate_dimensions_dropped = Counter(
            "pump_aggregate_dimensions_dropped",
            "Aggregate dimension rows an aggregate pump could not store (the records still count in the total).",
            ["pump", "reason"],
            registry=r,
        )
        self.retries = Counter("pump_retries", "Write attempts retried after a failure.", ["pump"], registry=r)
        self.write_seconds = Histogram(
            "pump_write_duration_seconds", "Time of one batch write by a pump.", ["pump"], buckets=WRITE_BUCKETS, registry=r
        )
        self.batch_seconds = Histogram(
            "pump_batch_latency_seconds", "Time from claim to acknowledgement of a batch.", buckets=WRITE_BUCKETS, registry=r
        )
        self.queue_records = Gauge("pump_queue_records", "Records waiting in a pump's in-memory queue.", ["pump"], registry=r)
        self.backlog_records = Gauge("pump_backlog_records", "Records in a pump's Redis backlog.", ["pump"], registry=r)
        self.deadletter_records = Gauge("pump_deadletter_records", "Entries in a dead-letter list.", ["pump"], registry=r)
        self.source_backlog = Gauge("pump_source_backlog_records", "Length of a gateway list.", ["source"], registry=r)
        self.oldest_unacked = Gauge(
            "pump_oldest_unacked_batch_age_seconds", "Age of the oldest batch claimed and not yet acknowledged.", registry=r
        )
        self.batches_in_flight = Gauge("pump_batches_in_flight", "Batches claimed and not yet acknowledged.", registry=r)
        self.records_requeued = Counter(
            "pump_records_requeued", "Records of unfinished batches returned to the head of their list.", ["reason"], registry=r
        )
        self.last_success = Gauge(
            "pump_last_success_timestamp_seconds", "Unix time of a pump's last successful write.", ["pump"], registry=r
        )
        self.last_ack = Gauge("pump_last_ack_timestamp_seconds", "Unix time of the last batch acknowledgement.", registry=r)
        self.last_tick = Gauge("pump_loop_last_tick_timestamp_seconds", "Unix time the claim loop last ran.", registry=r)
        self.pump_failing = Gauge("pump_failing", "1 while a pump's writes are failing.", ["pump"], registry=r)
        self.redis_up = Gauge("pump_redis_up", "1 when the last Redis command succeeded.", registry=r)
        Info("pump_build", "Version of the pump.", registry=r).info({"version": __version__})
        self.info = Gauge("pump_info", "1 for each configured pump, with its type.", ["pump", "type"], registry=r)
        #: Monotonic time of the first failure of the current Redis outage (None while Redis
        #: answers, or before it was ever tried), and that failure: what ``/ready`` reports.
        self.redis_down_since: float | None = None
        self.redis_error = ""
        self.redis_ever_up = False

    def redis_ok(self) -> None:
        """A Redis command succeeded."""
        self.redis_up.set(1)
        self.redis_down_since = None
        self.redis_error = ""
        self.redis_ever_up = True

    def redis_failed(self, error: str) -> None:
        """A Redis command failed for a reason worth waiting out (the server is down or busy)."""
        self.redis_up.set(0)
        self.redis_error = scrub(error)  # shown on /ready and in logs
        if self.redis_down_since is None:
            self.redis_down_since = time.monotonic()

    def init_pump(self, pump: str, type_name: str = "") -> None:
        """Pre-create a pump's series at 0 so dashboards and rates work before the first event."""
        self.info.labels(pump, type_name).set(1)
        for metric in (
            self.records_delivered, self.records_failed, self.records_filtered, self.records_deadlettered,
            self.records_parked, self.retries,
        ):  # fmt: skip
            metric.labels(pump)
        self.queue_records.labels(pump).set(0)
        self.pump_failing.labels(pump).set(0)

    def init_source(self, source: str) -> None:
        for metric in (self.records_claimed, self.batches_claimed, self.records_decoded, self.records_undecodable):
            metric.labels(source)
