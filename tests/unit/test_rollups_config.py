"""``rollups``, ``mode`` and ``publish_interval`` in the pump file: what validates, and errors that
name the key and the fix."""

from __future__ import annotations

from typing import Any

import pytest

from pump.config.load import validate
from pump.errors import ConfigError
from pump.sinks.publishing import seconds


def check(meta: dict[str, Any], kind: str = "sql_aggregate") -> str:
    base = {"type": "sqlite", "connection_string": "x.db"} if kind == "sql_aggregate" else {"mongo_url": "mongodb://h/db"}
    try:
        validate({"pumps": {"agg": {"type": kind, "meta": {**base, **meta}}}})
    except ConfigError as exc:
        return str(exc)
    return ""


@pytest.mark.parametrize(
    ("value", "expected"), [("5m", 300.0), ("90s", 90.0), ("1h", 3600.0), (2, 120.0), ("60m", 3600.0), ("0", 0.0), (0, 0.0), ("", 0.0)]
)
def test_publish_interval_spellings(value: Any, expected: float) -> None:
    assert seconds(value) == expected


@pytest.mark.parametrize("value", ["30s", "61m", "2h", "soon", -1, True])
def test_publish_interval_outside_one_to_sixty_minutes_is_refused(value: Any) -> None:
    with pytest.raises(ValueError):
        seconds(value)


def test_valid_settings_pass() -> None:
    assert check({"rollups": ["minute", {"granularity": "day", "retention_days": 30}], "publish_interval": "5m"}) == ""
    assert check({"mode": "wso2_summary"}) == ""
    assert check({"rollups": [{"granularity": "hour", "ttl": 3600}]}, "mongo-pump-aggregate") == ""


@pytest.mark.parametrize(
    ("meta", "kind", "phrases"),
    [
        ({"rollups": ["week"]}, "sql_aggregate", ["pumps.agg.meta.rollups", "minute", "year"]),
        ({"rollups": ["day", "day"]}, "sql_aggregate", ["pumps.agg.meta.rollups", "listed twice"]),
        ({"publish_interval": "90m"}, "sql_aggregate", ["pumps.agg.meta.publish_interval", "1 to 60 minutes"]),
        ({"mode": "wso2"}, "sql_aggregate", ["pumps.agg.meta.mode", "wso2_summary"]),
        ({"mode": "wso2_summary", "type": "mysql", "connection_string": "mysql://u@h/db"}, "sql_aggregate", ["wso2_summary", "MySQL"]),
        ({"rollups": [{"granularity": "day", "ttl": 60}]}, "mongo-pump-aggregate", ["pumps.agg.meta.rollups", "shorter than one day"]),
        ({"rollups": [{"granularity": "day", "retention_days": 3}]}, "mongo-pump-aggregate", ["retention_days"]),
    ],
)
def test_bad_settings_name_the_key(meta: dict[str, Any], kind: str, phrases: list[str]) -> None:
    message = check(meta, kind)
    for phrase in phrases:
        assert phrase in message, message


def test_without_our_options_the_registry_builds_tyks_sink_itself() -> None:
    from pump.config.load import validate
    from pump.sinks import build
    from pump.sinks.base import SinkContext
    from pump.sinks.sql.aggregate import AggregateSink
    from pump.sinks.sql.summary import SummaryAggregateSink
    from pump.sinks.sql.wso2 import Wso2SummarySink

    pumps = {
        "plain": {"type": "sql_aggregate", "meta": {"type": "sqlite", "connection_string": "x.db"}},
        "rolled": {"type": "sql_aggregate", "meta": {"type": "sqlite", "connection_string": "x.db", "rollups": ["day"]}},
        "timed": {"type": "sql_aggregate", "meta": {"type": "sqlite", "connection_string": "x.db", "publish_interval": 5}},
        "wso2": {"type": "sql_aggregate", "meta": {"type": "sqlite", "connection_string": "x.db", "mode": "wso2_summary"}},
    }
    config, _ = validate({"pumps": pumps})
    kinds = {name: type(build(SinkContext(name, config.pumps[name], config))) for name in pumps}
    assert kinds == {"plain": AggregateSink, "rolled": SummaryAggregateSink, "timed": SummaryAggregateSink, "wso2": Wso2SummarySink}
