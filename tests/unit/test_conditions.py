"""``conditions`` (issue 13 item 1): truth tables over a fixed batch, and/or, validation messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pump.config.analytics import Conditions
from pump.config.load import load
from pump.config.model import Config, PumpConfig
from pump.errors import ConfigError
from pump.transforms import build_view
from pump.transforms.conditions import ConditionError, compile_conditions
from tests.helpers import make_record

#: Six records that differ in the fields the rules test. Index = position in the batch.
BATCH = [
    make_record(api_id="a1", path="/users/1", method="GET", response_code=200, tags=["web", "key-1"],
                geo_country_iso_code="US", latency_upstream=10, latency_total=12, ip_address="10.0.0.1",
                user_agent="curl/8.4.0"),
    make_record(api_id="a1", path="/users/2", method="POST", response_code=201, tags=None,
                geo_country_iso_code="GB", latency_upstream=250, latency_total=260, ip_address="10.0.0.2",
                user_agent="Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"),
    make_record(api_id="a2", path="/orders", method="GET", response_code=429, tags=["mobile"],
                geo_country_iso_code="", latency_upstream=0, latency_total=1, ip_address="192.168.1.9", user_agent=""),
    make_record(api_id="a2", path="/orders/9", method="DELETE", response_code=503, tags=["web"],
                geo_country_iso_code="US", latency_upstream=900, latency_total=905, ip_address="172.16.0.4", user_agent=""),
    make_record(api_id="a3", path="/health", method="GET", response_code=404, tags=[],
                geo_country_iso_code="DE", latency_upstream=3, latency_total=4, alias="bob", user_agent=""),
    make_record(api_id="a3", path="/Users/x", method="GET", response_code=0, tags=["web", "beta"],
                geo_country_iso_code="US", latency_upstream=0, latency_total=30000, alias="", user_agent=""),
]  # fmt: skip


def kept(rules: list[dict[str, Any]], type_: str = "and") -> list[int]:
    keep = compile_conditions(Conditions.model_validate({"type": type_, "rules": rules}))
    assert keep is not None
    ids = {id(r): i for i, r in enumerate(BATCH)}
    return [ids[id(r)] for r in keep(BATCH)]


@pytest.mark.parametrize(
    ("variable", "operator", "value", "expected"),
    [
        ("api_id", "equals", "a1", [0, 1]),
        ("api_id", "not equals", "a1", [2, 3, 4, 5]),
        ("path", "contains", "sers", [0, 1, 5]),
        ("path", "starts with", "/users", [0, 1]),
        ("path", "ends with", "s", [2]),
        ("path", "matches", r"^/(users|orders)/\d+$", [0, 1, 3]),
        ("path", "matches", r"(?i)^/users", [0, 1, 5]),
        ("method", "in", ["POST", "DELETE"], [1, 3]),
        ("response_code", "in", [200, 404], [0, 4]),
        ("response_code", ">", 400, [2, 3, 4]),
        ("response_code", ">=", 429, [2, 3]),
        ("response_code", "<", 200, [5]),
        ("response_code", "<=", 201, [0, 1, 5]),
        ("latency.upstream", ">", 100, [1, 3]),
        ("latency.total", ">=", 905, [3, 5]),
        ("geo.country.iso_code", "equals", "US", [0, 3, 5]),
        ("geo.country.iso_code", "exists", None, [0, 1, 3, 4, 5]),
        ("geo.country.iso_code", "exists", False, [2]),
        ("alias", "exists", True, [4]),
        ("tags", "contains", "web", [0, 3, 5]),
        ("tags", "equals", "mobile", [2]),
        ("tags", "not equals", "web", [1, 2, 4]),
        ("tags", "starts with", "be", [5]),
        ("tags", "in", ["beta", "mobile"], [2, 5]),
        ("tags", "exists", None, [0, 2, 3, 5]),
        ("ip_address", "starts with", "10.", [0, 1]),
        ("event_kind", "equals", "throttled", [2]),
        ("event_kind", "equals", "fault", [3, 5]),
        ("event_kind", "equals", "request", [0, 1, 4]),
        ("event_kind", "in", ["fault", "throttled"], [2, 3, 5]),
        ("timestamp", ">=", "2024-01-15T13:00:00Z", [0, 1, 2, 3, 4, 5]),
        ("timestamp", "<", "2024-01-15T13:00:00Z", []),
        ("browser", "equals", "curl", [0]),
        ("browser", "equals", "Firefox", [1]),
        ("os", "equals", "Linux", [1]),
        ("user_agent", "exists", None, [0, 1]),
    ],
)
def test_truth_table(variable: str, operator: str, value: Any, expected: list[int]) -> None:
    rule: dict[str, Any] = {"variable": variable, "operator": operator}
    if value is not None:
        rule["value"] = value
    assert kept([rule]) == expected


def test_and_needs_every_rule_or_needs_one() -> None:
    rules = [
        {"variable": "api_id", "operator": "in", "value": ["a1", "a2"]},
        {"variable": "method", "operator": "equals", "value": "GET"},
    ]
    assert kept(rules, "and") == [0, 2]
    assert kept(rules, "or") == [0, 1, 2, 3, 4, 5]
    rules = [
        {"variable": "response_code", "operator": ">=", "value": 500},
        {"variable": "geo.country.iso_code", "operator": "equals", "value": "GB"},
    ]
    assert kept(rules, "or") == [1, 3]  # order of the batch, not of the rules
    assert kept(rules, "and") == []


def test_operator_spellings() -> None:
    for spelling in ("not_equals", "NOT EQUALS", "!="):
        assert kept([{"variable": "api_id", "operator": spelling, "value": "a3"}]) == [0, 1, 2, 3]
    assert kept([{"variable": "path", "operator": "starts_with", "value": "/o"}]) == [2, 3]


def test_conditions_and_filters_both_apply_and_originals_are_untouched() -> None:
    pump = PumpConfig(
        type="csv",
        filters={"skip_api_ids": ["a2"]},
        conditions={"type": "or", "rules": [{"variable": "response_code", "operator": ">=", "value": 400}]},
    )
    view = build_view(pump, Config(pumps={"x": pump}))
    assert [r.response_code for r in view(BATCH)] == [404]  # a2's 429 and 503 are filtered out
    assert len(BATCH) == 6


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"variable": "geo.country", "operator": "equals", "value": "US"}, "unknown variable 'geo.country'"),
        ({"variable": "path", "operator": "matches", "value": "(["}, "bad regular expression '(['"),
        ({"variable": "response_code", "operator": "equals", "value": "200"}, "'response_code' is a number; the value '200' is not"),
        ({"variable": "path", "operator": ">", "value": 3}, "'>' needs a numeric or time variable"),
        ({"variable": "latency.total", "operator": "contains", "value": "1"}, "'contains' needs a text variable"),
        ({"variable": "api_id", "operator": "in", "value": "a1"}, "'in' needs a non-empty list"),
        ({"variable": "api_id", "operator": "like", "value": "a"}, "unknown operator 'like'"),
        ({"variable": "api_id", "operator": "equals"}, "'equals' needs a value"),
        ({"variable": "timestamp", "operator": ">", "value": "yesterday"}, "is not an ISO 8601 time"),
        ({"variable": "geo.city.names", "operator": "equals", "value": "x"}, "only 'exists' applies"),
    ],
)
def test_bad_rules_are_named(rule: dict[str, Any], message: str) -> None:
    rules = [{"variable": "api_id", "operator": "exists"}, rule]
    with pytest.raises(ConditionError) as err:
        compile_conditions(Conditions.model_validate({"rules": rules}), "pumps.csv.conditions")
    assert str(err.value).startswith("pumps.csv.conditions.rules[1]: ")
    assert message in str(err.value)


def test_pump_validate_names_every_bad_rule(tmp_path: Path) -> None:
    rules = [
        {"variable": "api_id", "operator": "equals", "value": "a"},
        {"variable": "nope", "operator": "equals", "value": "a"},
        {"variable": "path", "operator": "matches", "value": "*x"},
    ]
    path = tmp_path / "pump.yaml"
    path.write_text(yaml.safe_dump({"pumps": {"csv": {"type": "csv", "meta": {"csv_dir": str(tmp_path)}, "conditions": {"rules": rules}}}}))
    with pytest.raises(ConfigError) as err:
        load(path, environ={})
    text = str(err.value)
    assert "pumps.csv.conditions.rules[1]: unknown variable 'nope'" in text
    assert "pumps.csv.conditions.rules[2]: bad regular expression '*x'" in text
    assert "rules[0]" not in text


def test_no_rules_keeps_the_batch_object() -> None:
    pump = PumpConfig(type="csv", conditions={"type": "and", "rules": []})
    assert build_view(pump, Config(pumps={"x": pump}))(BATCH) is BATCH
