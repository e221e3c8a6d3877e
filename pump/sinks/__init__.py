"""Sink registry: pump ``type`` names → the module implementing them, imported on demand.

Lazy imports keep ``pump validate`` and the CSV-only demo working without every database driver
installed. Each module provides ``Meta`` (its ``meta:`` block) and ``build(ctx, meta) -> Sink``.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import BaseModel

    from pump.sinks.base import Sink, SinkContext

#: Type name (as written in ``type:``, case-insensitive) → module.
SINKS: dict[str, str] = {
    "csv": "pump.sinks.csv",
    "stdout": "pump.sinks.stdout",
    "dummy": "pump.sinks.dummy",
    "sql": "pump.sinks.sql",
    "sql_aggregate": "pump.sinks.sql_aggregate",
    "mongo": "pump.sinks.mongo",
    "mongo-pump-selective": "pump.sinks.mongo_selective",
    "mongo-pump-aggregate": "pump.sinks.mongo_aggregate",
    "elasticsearch": "pump.sinks.elasticsearch",
    "prometheus": "pump.sinks.prometheus",
    "http": "pump.sinks.http",
    "splunk": "pump.sinks.http.splunk",
    "moesif": "pump.sinks.http.moesif",
    "kafka": "pump.sinks.kafka",
    "syslog": "pump.sinks.syslog",
    "statsd": "pump.sinks.statsd",
    "dogstatsd": "pump.sinks.statsd.dogstatsd",
}

#: ``uptime_pump_config.uptime_type`` → module providing ``build_uptime(config) -> Sink``.
UPTIME_SINKS: dict[str, str] = {
    "sql": "pump.sinks.sql_uptime",
    "mongo": "pump.sinks.mongo_uptime",
}

#: Which optional dependency a sink module needs, for the error when it is missing.
EXTRAS: dict[str, str] = {
    "sql": "postgres", "sql_aggregate": "postgres", "mongo": "mongo", "mongo-pump-selective": "mongo",
    "mongo-pump-aggregate": "mongo", "elasticsearch": "elasticsearch", "uptime mongo": "mongo", "uptime sql": "postgres",
    "http": "http", "splunk": "http", "moesif": "http", "kafka": "kafka",
}  # fmt: skip

#: Every pump type Tyk Pump knows (tyk-pump.md §4). A type here but not in SINKS gets an error
#: that says it is a real Tyk type this pump does not implement, rather than "unknown".
TYK_TYPES: frozenset[str] = frozenset(
    {
        "influx", "influx2", "moesif", "statsd", "segment", "graylog", "splunk", "hybrid", "logzio",
        "dogstatsd", "kafka", "syslog", "timestream", "mongo-graph", "sql-graph", "sql-graph-aggregate",
        "mongo-mcp", "mongo-mcp-aggregate", "sql-mcp", "sql-mcp-aggregate", "resurfaceio", "sqs", "kinesis",
        "prometheus", "mongo", "mongo-pump-selective", "mongo-pump-aggregate", "sql", "sql_aggregate",
        "elasticsearch", "csv", "stdout", "dummy",
    }
)  # fmt: skip


def canonical_type(name: str) -> str:
    return name.strip().lower()


class SinkUnavailable(ImportError):
    """The sink's module or its driver cannot be imported."""


def _import(module_name: str, type_name: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        extra = EXTRAS.get(type_name, "all")
        raise SinkUnavailable(
            f"pump type {type_name!r} cannot be loaded ({exc}); install its driver with: pip install 'pump[{extra}]'"
        ) from exc


def module(type_name: str) -> ModuleType:
    canonical = canonical_type(type_name)
    return _import(SINKS[canonical], canonical)


def uptime_module(uptime_type: str) -> ModuleType:
    return _import(UPTIME_SINKS[uptime_type], f"uptime {uptime_type}")


def meta_model(type_name: str) -> type[BaseModel]:
    """The pydantic model of a sink type's ``meta`` block."""
    return module(type_name).Meta  # type: ignore[no-any-return]


def build(ctx: SinkContext) -> Sink:
    """Create the sink for one configured pump (its meta already validated)."""
    mod = module(ctx.pump.type)
    return mod.build(ctx, mod.Meta.model_validate(ctx.pump.meta))  # type: ignore[no-any-return]
