"""Every pump type Tyk Pump registers (``pumps/init.go``, tyk-pump.md §4) against ``pump validate``:
which ones validate here, and that each of the others is refused as a real Tyk type this pump does
not implement (not as "unknown"), so a user reads at once why their pump.conf does not load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pump import sinks
from pump.config.load import validate
from pump.errors import ConfigError

#: ``AvailablePumps`` of Tyk Pump's ``pumps/init.go`` (master of 2026-08-20), in its order.
TYK_PUMP_TYPES = (
    "dummy", "mongo", "mongo-pump-selective", "mongo-pump-aggregate", "csv", "elasticsearch", "influx",
    "influx2", "moesif", "statsd", "segment", "graylog", "splunk", "hybrid", "prometheus", "logzio",
    "dogstatsd", "kafka", "syslog", "sql", "sql_aggregate", "stdout", "timestream", "mongo-graph",
    "sql-graph", "sql-graph-aggregate", "mongo-mcp", "mongo-mcp-aggregate", "sql-mcp", "sql-mcp-aggregate",
    "resurfaceio", "sqs", "kinesis",
)  # fmt: skip

#: The minimal ``meta`` a user writes for each type that validates here (Tyk's required keys).
VALIDATES: dict[str, dict[str, Any]] = {
    "dummy": {},
    "mongo": {"mongo_url": "mongodb://mongo:27017/tyk_analytics", "collection_name": "tyk_analytics"},
    "mongo-pump-selective": {"mongo_url": "mongodb://mongo:27017/tyk_analytics"},
    "mongo-pump-aggregate": {"mongo_url": "mongodb://mongo:27017/tyk_analytics"},
    "csv": {"csv_dir": "CSV_DIR"},
    "elasticsearch": {"elasticsearch_url": "http://elasticsearch:9200", "index_name": "tyk_analytics"},
    "moesif": {"application_id": "moesif-app-id"},
    "statsd": {"address": "statsd:8125"},
    "splunk": {"collector_token": "hec-token", "collector_url": "https://splunk:8088/services/collector/event"},
    "prometheus": {"listen_address": ":9090", "path": "/metrics"},
    "logzio": {"token": "logzio-token"},
    "dogstatsd": {"address": "dogstatsd:8125", "namespace": "tyk"},
    "kafka": {"broker": ["kafka:9092"], "topic": "tyk-analytics"},
    "syslog": {"transport": "udp", "network_addr": "syslog:5140"},
    "sql": {"type": "postgres", "connection_string": "host=db user=tyk dbname=tyk"},
    "sql_aggregate": {"type": "postgres", "connection_string": "host=db user=tyk dbname=tyk"},
    "stdout": {"format": "json"},
    "mongo-graph": {"mongo_url": "mongodb://mongo:27017/tyk_analytics", "collection_name": "tyk_graph_analytics"},
    "mongo-mcp": {"mongo_url": "mongodb://mongo:27017/tyk_analytics", "collection_name": "tyk_mcp_analytics"},
    "mongo-mcp-aggregate": {"mongo_url": "mongodb://mongo:27017/tyk_analytics"},
    "sql-graph": {"type": "postgres", "connection_string": "host=db user=tyk dbname=tyk"},
    "sql-graph-aggregate": {"type": "postgres", "connection_string": "host=db user=tyk dbname=tyk"},
    "sql-mcp": {"type": "postgres", "connection_string": "host=db user=tyk dbname=tyk"},
    "sql-mcp-aggregate": {"type": "postgres", "connection_string": "host=db user=tyk dbname=tyk"},
}


def _pump_file(type_name: str, meta: dict[str, Any], tmp: Path) -> dict[str, Any]:
    meta = {k: (str(tmp / "csv") if v == "CSV_DIR" else v) for k, v in meta.items()}
    return {"pumps": {"p": {"type": type_name, "meta": meta}}}


def test_the_list_is_tyks_registry() -> None:
    """The loader's list of Tyk's types is exactly Tyk's registry (33 types), and every type that
    validates here is one of them (``http`` is ours)."""
    assert len(TYK_PUMP_TYPES) == 33 == len(set(TYK_PUMP_TYPES))
    assert frozenset(TYK_PUMP_TYPES) == sinks.TYK_TYPES
    assert set(VALIDATES) == set(sinks.SINKS) - {"http"}


@pytest.mark.parametrize("type_name", TYK_PUMP_TYPES)
def test_each_tyk_type_validates_or_is_named_as_not_implemented(type_name: str, tmp_path: Path) -> None:
    if type_name in VALIDATES:
        config, _ = validate(_pump_file(type_name, VALIDATES[type_name], tmp_path))
        assert config.pumps["p"].type == type_name
        assert type(config.pumps["p"].validated_meta()) is sinks.meta_model(type_name)
        return
    with pytest.raises(ConfigError) as refused:
        validate(_pump_file(type_name, {}, tmp_path))
    assert f"pumps.p.type: '{type_name}' is a Tyk Pump type that this pump does not implement" in str(refused.value)


def test_how_many_of_tyks_types_validate() -> None:
    """The figure for the closing notes: 24 of Tyk's 33 pump types validate; the nine others are
    influx, influx2, segment, graylog, hybrid, timestream, resurfaceio, sqs and kinesis."""
    validating = [t for t in TYK_PUMP_TYPES if t in sinks.SINKS]
    assert validating == [
        "dummy", "mongo", "mongo-pump-selective", "mongo-pump-aggregate", "csv", "elasticsearch", "moesif", "statsd",
        "splunk", "prometheus", "logzio", "dogstatsd", "kafka", "syslog", "sql", "sql_aggregate", "stdout",
        "mongo-graph", "sql-graph", "sql-graph-aggregate", "mongo-mcp", "mongo-mcp-aggregate", "sql-mcp", "sql-mcp-aggregate",
    ]  # fmt: skip
    assert (len(validating), len(TYK_PUMP_TYPES)) == (24, 33)
    assert [t for t in TYK_PUMP_TYPES if t not in sinks.SINKS] == [
        "influx", "influx2", "segment", "graylog", "hybrid", "timestream", "resurfaceio", "sqs", "kinesis",
    ]  # fmt: skip
