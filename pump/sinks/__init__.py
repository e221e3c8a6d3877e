"""Sink registry: pump ``type`` names → the :class:`~pump.sinks.base.SinkSpec` of each, imported on demand.

Each line of :data:`SINKS` reads ``"type": "module:ATTRIBUTE [extra]"`` — the syntax of a Python
entry point: the module and attribute holding the type's ``SinkSpec`` (``SPEC`` when no attribute
is given) and the pip extra that installs its driver. Nothing is imported until a pump of that
type is configured, which keeps ``pump validate`` and the CSV-only demo working without every
database driver installed; a missing driver is reported with the ``pip install 'pump[extra]'``
line that fixes it.

Adding a sink family (say Kafka) takes a package ``pump/sinks/kafka/`` (one concern per module,
like ``pump/sinks/elasticsearch/``) whose ``__init__`` declares

    SPEC = SinkSpec(meta=Meta, build=build)

and one line here: ``"kafka": "pump.sinks.kafka [kafka]"``. A family with several types (SQL,
Mongo) declares one spec per type and names it in each line (``"pump.sinks.sql:AGGREGATE"``).
A module that has ``Meta`` and ``build`` but no ``SPEC`` is read as a spec too (test doubles do
this). Uptime builders hang off the spec whose type name equals the ``uptime_type``.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint
from types import ModuleType
from typing import TYPE_CHECKING, Any

from pump.sinks.base import Sink, SinkContext, SinkMeta, SinkSpec

if TYPE_CHECKING:
    from pump.config.model import Config

#: Type name (as written in ``type:``, case-insensitive) → ``module:ATTRIBUTE [extra]`` of its spec.
SINKS: dict[str, str] = {
    "csv": "pump.sinks.csv",
    "stdout": "pump.sinks.stdout",
    "dummy": "pump.sinks.dummy",
    "sql": "pump.sinks.sql:RAW [postgres]",
    "sql_aggregate": "pump.sinks.sql:AGGREGATE [postgres]",
    "sql-graph": "pump.sinks.sql.graph:GRAPH [postgres]",
    "sql-mcp": "pump.sinks.sql.graph:MCP [postgres]",
    "sql-graph-aggregate": "pump.sinks.sql.graph_aggregate:GRAPH_AGGREGATE [postgres]",
    "sql-mcp-aggregate": "pump.sinks.sql.graph_aggregate:MCP_AGGREGATE [postgres]",
    "mongo": "pump.sinks.mongo:RAW [mongo]",
    "mongo-pump-selective": "pump.sinks.mongo:SELECTIVE [mongo]",
    "mongo-pump-aggregate": "pump.sinks.mongo:AGGREGATE [mongo]",
    "mongo-graph": "pump.sinks.mongo.graph:GRAPH [mongo]",
    "mongo-mcp": "pump.sinks.mongo.graph:MCP [mongo]",
    "mongo-mcp-aggregate": "pump.sinks.mongo.mcp_aggregate:MCP_AGGREGATE [mongo]",
    "elasticsearch": "pump.sinks.elasticsearch [elasticsearch]",
    "prometheus": "pump.sinks.prometheus",
    "http": "pump.sinks.http [http]",
    "splunk": "pump.sinks.http.splunk [http]",
    "moesif": "pump.sinks.http.moesif [http]",
    "logzio": "pump.sinks.http.logzio [http]",
    "kafka": "pump.sinks.kafka [kafka]",
    "syslog": "pump.sinks.syslog",
    "statsd": "pump.sinks.statsd",
    "dogstatsd": "pump.sinks.statsd.dogstatsd",
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


class SinkUnavailable(ImportError):
    """The sink's module or its driver cannot be imported."""


def _load(type_name: str, label: str) -> SinkSpec[Any]:
    entry = EntryPoint(type_name, SINKS[type_name], "pump.sinks")
    try:
        loaded = entry.load()
    except ImportError as exc:
        extra = entry.extras[0] if entry.extras else "all"
        raise SinkUnavailable(
            f"pump type {label!r} cannot be loaded ({exc}); install its driver with: pip install 'pump[{extra}]'"
        ) from exc
    if isinstance(loaded, ModuleType):
        loaded = getattr(loaded, "SPEC", None) or SinkSpec(meta=loaded.Meta, build=loaded.build)
    if not isinstance(loaded, SinkSpec):
        raise TypeError(f"{SINKS[type_name]} is not a SinkSpec (pump type {type_name!r})")
    return loaded


def spec(type_name: str) -> SinkSpec[Any]:
    """The spec of a pump type (case-insensitive); ``KeyError`` if unknown, :class:`SinkUnavailable`
    if its module or driver cannot be imported."""
    canonical = canonical_type(type_name)
    return _load(canonical, canonical)


def meta_model(type_name: str) -> type[SinkMeta]:
    """The pydantic model of a sink type's ``meta`` block."""
    return spec(type_name).meta


def build(ctx: SinkContext) -> Sink:
    """Create the sink for one configured pump. Its ``meta`` was validated by the config loader and
    is used as is; a pump built by hand (tests, tools) has it validated here."""
    sink_spec = spec(ctx.pump.type)
    meta = ctx.pump.validated_meta()
    if not isinstance(meta, sink_spec.meta):
        meta = sink_spec.meta.model_validate(ctx.pump.meta)
    return sink_spec.build(ctx, meta)


def _uptime_spec(uptime_type: str) -> SinkSpec[Any]:
    found = _load(uptime_type, f"uptime {uptime_type}") if uptime_type in SINKS else None
    if found is None or found.uptime is None:
        raise KeyError(f"no uptime sink for uptime_type {uptime_type!r}")
    return found


def build_uptime(uptime_type: str, config: Config) -> Sink:
    """The sink for ``uptime_pump_config`` with ``uptime_type`` (``sql`` or ``mongo``)."""
    builder = _uptime_spec(uptime_type).uptime
    assert builder is not None
    return builder(config)


def check_uptime(uptime_type: str, config: Config) -> None:
    """Validate ``uptime_pump_config`` for ``uptime_type``, if its family checks it at
    ``pump validate``; raises pydantic's ``ValidationError`` or :class:`SinkUnavailable`."""
    check = _uptime_spec(uptime_type).uptime_meta
    if check is not None:
        check(config)
