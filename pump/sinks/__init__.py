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
}

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


def module(type_name: str) -> ModuleType:
    return importlib.import_module(SINKS[canonical_type(type_name)])


def meta_model(type_name: str) -> type[BaseModel]:
    """The pydantic model of a sink type's ``meta`` block."""
    return module(type_name).Meta  # type: ignore[no-any-return]


def build(ctx: SinkContext) -> Sink:
    """Create the sink for one configured pump (its meta already validated)."""
    mod = module(ctx.pump.type)
    return mod.build(ctx, mod.Meta.model_validate(ctx.pump.meta))  # type: ignore[no-any-return]
