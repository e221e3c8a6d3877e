"""The uptime pump: whether host-checker records are drained, and into which sink.

Tyk configures it apart from ``pumps`` (``uptime_pump_config``), so it has a fixed name of its
own in logs, metrics and dead letters. Used by the daemon (to wire it) and by ``pump deadletter``
(to accept its name) alike.
"""

from __future__ import annotations

from pump.config.model import Config
from pump.sinks import build_uptime as build_uptime_of
from pump.sinks.base import Sink

#: The uptime pump's name (it has no entry under ``pumps``; Tyk configures it apart too).
UPTIME_PUMP = "uptime"


def uptime_kind(cfg: Config) -> str | None:
    """``mongo`` or ``sql`` when host-checker records are drained to an uptime sink, else None.

    Without a sink the uptime list is left alone: draining it nowhere would lose it."""
    up = cfg.uptime_pump_config
    if cfg.dont_purge_uptime_data or up is None:
        return None
    kind = up.uptime_type or "mongo"
    if kind == "mongo" and not up.mongo_url:
        return None
    return kind


def build_uptime_sink(cfg: Config) -> Sink | None:
    """The sink for host-checker records, from ``uptime_pump_config``, or None (:func:`uptime_kind`)."""
    kind = uptime_kind(cfg)
    return None if kind is None else build_uptime_of(kind, cfg)
