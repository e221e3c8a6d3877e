"""``dogstatsd``: the registry's entry point for Tyk's DogStatsD pump (``Meta`` and ``build``)."""

from __future__ import annotations

import logging

from pump.sinks.base import SinkContext
from pump.sinks.statsd.config import DogMeta
from pump.sinks.statsd.lines import dog_lines
from pump.sinks.statsd.sink import StatsdSink

log = logging.getLogger(__name__)

Meta = DogMeta


def build(ctx: SinkContext, meta: DogMeta) -> StatsdSink:
    """Tyk's ``buffered``/``buffered_max_messages`` cap the lines per datagram; without
    ``buffered`` datagrams are still filled up to ``max_packet_bytes`` (Tyk sends one line each)."""
    max_lines = (meta.buffered_max_messages or 16) if meta.buffered else 0
    if meta.address.startswith("unix://") and meta.async_uds:
        meta = meta.model_copy(update={"send_timeout": float(meta.async_uds_write_timeout_seconds or 1)})
    return StatsdSink(ctx.name, meta, meta.address, dog_lines(meta), max_lines=max_lines, kind="DogStatsD")


__all__ = ["Meta", "build"]
