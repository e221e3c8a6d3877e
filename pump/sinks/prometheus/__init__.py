"""``prometheus``: Tyk's Prometheus pump — API analytics as metrics on a scrape endpoint.

Tyk's meta keys and built-in families (``tyk_http_status``, ``tyk_http_status_per_path``,
``tyk_http_status_per_key``, ``tyk_http_status_per_oauth_client``, ``tyk_latency``) with Tyk's
names, help, labels and buckets, plus custom counters and histograms. Beyond Tyk: a cap on label
sets per family (``max_series_per_metric``, overflow counted in
``pump_prometheus_dropped_series_total``) and ``template_paths``. See docs/sinks/prometheus.md.

Modules: ``config`` (the ``meta`` model), ``families`` (what each family counts and how labels
are read), ``store`` (tallies, the cap, the text exposition), ``sink`` (the writer and listener).
"""

from __future__ import annotations

from pump.sinks.base import SinkContext
from pump.sinks.prometheus.config import CustomMetric, Meta
from pump.sinks.prometheus.sink import PrometheusSink, build_sink


def build(ctx: SinkContext, meta: Meta) -> PrometheusSink:
    return build_sink(ctx.name, meta)


__all__ = ["CustomMetric", "Meta", "PrometheusSink", "build"]
