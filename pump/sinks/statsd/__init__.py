"""``statsd`` and ``dogstatsd``: Tyk's StatsD and DogStatsD pumps — per-record timings/histograms.

Modules: ``config`` (both ``meta`` models), ``lines`` (metric lines, Tyk's naming and tags),
``sink`` (packing and sending; sockets in :mod:`pump.sinks.netio`), ``dogstatsd`` (the
``dogstatsd`` type's entry point). See docs/sinks/statsd.md.
"""

from __future__ import annotations

from pump.sinks.base import SinkContext
from pump.sinks.statsd.config import Meta
from pump.sinks.statsd.lines import statsd_lines
from pump.sinks.statsd.sink import StatsdSink


def build(ctx: SinkContext, meta: Meta) -> StatsdSink:
    return StatsdSink(ctx.name, meta, meta.address, statsd_lines(meta))


__all__ = ["Meta", "StatsdSink", "build"]
