"""Config values that validate but would misbehave are refused: non-finite numbers anywhere,
numbers outside a sane range (the message names the key and the range), YAML alias bombs; and a
Tyk JSON pump.conf is read as JSON, tabs and all."""

from __future__ import annotations

import json
import re
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from pump.config import model as config_model
from pump.config.load import format_errors, load
from pump.errors import ConfigError
from tests.helpers import ROOT

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def write(tmp_path: Path, text: str, name: str = "pump.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def errors_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(path, {})
    return info.value.errors


# --------------------------------------------------------------------------- non-finite numbers


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [
        ("purge_delay: .inf", "purge_delay"),
        ("delivery: {lease_seconds: .inf}", "delivery.lease_seconds"),
        ("delivery: {max_age: .nan}", "delivery.max_age"),
        ("delivery: {backoff_max: .inf}", "delivery.backoff_max"),
        ("telemetry: {shutdown_timeout: .inf}", "telemetry.shutdown_timeout"),
        ("telemetry: {ready_failing_after: -.inf}", "telemetry.ready_failing_after"),
        ("analytics_storage_config: {timeout: .inf}", "analytics_storage_config.timeout"),
        ("uptime_pump_config: {mongo_url: 'mongodb://h/db'}\nstorage_expiration_time: .inf", "storage_expiration_time"),
    ],
)
def test_non_finite_numbers_are_refused_in_the_core_config(tmp_path: Path, yaml_text: str, key: str) -> None:
    errs = errors_of(write(tmp_path, f"{yaml_text}\npumps: {{csv: {{type: csv}}}}\n"))
    assert any(e.startswith(f"{key}: ") and "finite number" in e for e in errs), errs


@pytest.mark.parametrize(
    ("pump", "key"),
    [
        ({"type": "csv", "timeout": float("inf")}, "pumps.p.timeout"),
        ({"type": "csv", "delivery": {"backoff_initial": float("nan")}}, "pumps.p.delivery.backoff_initial"),
        ({"type": "elasticsearch", "meta": {"request_timeout": float("inf")}}, "pumps.p.meta.request_timeout"),
        ({"type": "sql", "meta": {"type": "sqlite", "batch_size": float("inf")}}, "pumps.p.meta.batch_size"),
    ],
)
def test_non_finite_numbers_are_refused_in_pumps_and_sink_metas(tmp_path: Path, pump: dict[str, Any], key: str) -> None:
    """JSON's NaN/Infinity (Python's json reads them) are refused like YAML's .inf/.nan."""
    errs = errors_of(write(tmp_path, json.dumps({"pumps": {"p": pump}}), "pump.conf"))
    assert any(e.startswith(f"{key}: ") and "finite number" in e for e in errs), errs


def test_every_config_model_refuses_non_finite_numbers() -> None:
    """One mechanism, in the base models: every model of the pump file inherits it."""
    from pump.sinks import SINKS, meta_model

    models: list[type[BaseModel]] = [
        m for m in vars(config_model).values() if isinstance(m, type) and issubclass(m, BaseModel) and m is not BaseModel
    ]
    models += [meta_model(name) for name in SINKS]
    for m in models:
        assert m.model_config.get("allow_inf_nan") is False, m.__name__


# --------------------------------------------------------------------------- ranges

#: Values that validated and then misbehaved (issue 9, item 10), and out-of-range neighbours.
OUT_OF_RANGE = [
    ("purge_delay: 0.001", "purge_delay", "0.1 to 3600"),
    ("purge_delay: 100000", "purge_delay", "0.1 to 3600"),
    ("purge_chunk: 1000000", "purge_chunk", "0 to 100000"),
    ("delivery: {claim_size: 1000000}", "delivery.claim_size", "0 to 100000"),
    ("delivery: {lease_seconds: 1}", "delivery.lease_seconds", "2 to 3600"),
    ("delivery: {lease_seconds: 1.0e12}", "delivery.lease_seconds", "2 to 3600"),
    ("delivery: {max_batches_in_flight: 1000}", "delivery.max_batches_in_flight", "1 to 64"),
    ("delivery: {queue_records: 100000000}", "delivery.queue_records", "1 to 1000000"),
    ("delivery: {backoff_initial: 0}", "delivery.backoff_initial", "0.001 to 3600"),
    ("delivery: {backoff_max: 1.0e9}", "delivery.backoff_max", "0.001 to 3600"),
    ("delivery: {max_age: -1}", "delivery.max_age", "0 to 2592000"),
    ("delivery: {max_attempts: 1000000000000}", "delivery.max_attempts", "0 to 1000000"),
    ("telemetry: {shutdown_timeout: 0}", "telemetry.shutdown_timeout", "0.1 to 3600"),
    ("telemetry: {ready_failing_after: 1.0e7}", "telemetry.ready_failing_after", "0.1 to 86400"),
    ("analytics_storage_config: {timeout: 100000}", "analytics_storage_config.timeout", "0 to 300"),
    ("analytics_storage_config: {database: -1}", "analytics_storage_config.database", "0 to 65535"),
    ("analytics_storage_config: {optimisation_max_active: 10000000}", "analytics_storage_config.optimisation_max_active", "0 to 10000"),
    ("health_check_endpoint_port: 70000", "health_check_endpoint_port", "0 to 65535"),
    ("max_record_size: -5", "max_record_size", "0 to 1073741824"),
]


@pytest.mark.parametrize(("yaml_text", "key", "bounds"), OUT_OF_RANGE, ids=[k for _, k, _ in OUT_OF_RANGE])
def test_out_of_range_values_name_the_key_and_the_range(tmp_path: Path, yaml_text: str, key: str, bounds: str) -> None:
    errs = errors_of(write(tmp_path, f"{yaml_text}\npumps: {{csv: {{type: csv}}}}\n"))
    assert any(e.startswith(f"{key}: ") and f"the range is {bounds}" in e for e in errs), errs


def test_pump_level_values_are_bounded_too(tmp_path: Path) -> None:
    doc = {"pumps": {"csv": {"type": "csv", "timeout": 1e9, "max_record_size": -1, "delivery": {"concurrency": 1000}}}}
    text = "\n".join(errors_of(write(tmp_path, json.dumps(doc), "pump.conf")))
    assert "pumps.csv.timeout: " in text and "the range is 0 to 3600" in text
    assert "pumps.csv.max_record_size: " in text and "the range is 0 to 1073741824" in text
    assert "pumps.csv.delivery.concurrency: " in text and "the range is 1 to 64" in text


def test_the_edges_of_every_range_are_accepted(tmp_path: Path) -> None:
    low = {
        "purge_delay": 0.1, "purge_chunk": 0, "max_record_size": 0,
        "analytics_storage_config": {"timeout": 0, "database": 0, "optimisation_max_active": 0},
        "delivery": {"lease_seconds": 2, "claim_size": 0, "max_batches_in_flight": 1, "queue_records": 1,
                     "backoff_initial": 0.001, "backoff_max": 0.001, "max_age": 0, "max_attempts": 0},
        "telemetry": {"shutdown_timeout": 0.1, "ready_failing_after": 0.1},
        "pumps": {"csv": {"type": "csv", "timeout": 0}},
    }  # fmt: skip
    high = {
        "purge_delay": 3600, "purge_chunk": 100000, "max_record_size": 1 << 30,
        "analytics_storage_config": {"timeout": 300, "database": 65535, "optimisation_max_active": 10000},
        "delivery": {"lease_seconds": 3600, "claim_size": 100000, "max_batches_in_flight": 64, "queue_records": 1000000,
                     "backoff_initial": 3600, "backoff_max": 3600, "max_age": 2592000, "max_attempts": 1000000},
        "telemetry": {"shutdown_timeout": 3600, "ready_failing_after": 86400},
        "pumps": {"csv": {"type": "csv", "timeout": 3600}},
    }  # fmt: skip
    for doc in (low, high):
        load(write(tmp_path, json.dumps(doc), "pump.conf"), {})


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _bounded_fields() -> list[tuple[str, str]]:
    """(key, "lo–hi") for every bounded number of the core config."""
    out = []
    sections = {"": config_model.Config, "analytics_storage_config.": config_model.StorageConfig,
                "delivery.": config_model.DeliveryDefaults, "telemetry.": config_model.Telemetry,
                "pumps.NAME.": config_model.PumpConfig}  # fmt: skip
    for prefix, m in sections.items():
        for name, field in m.model_fields.items():
            lo = next((c.ge for c in field.metadata if getattr(c, "ge", None) is not None), None)
            hi = next((c.le for c in field.metadata if getattr(c, "le", None) is not None), None)
            if lo is not None and hi is not None:
                out.append((prefix + name, f"{_num(lo)}–{_num(hi)}"))
    return out


def test_every_range_is_in_the_readme_and_the_example() -> None:
    readme = (ROOT / "README.md").read_text().splitlines()
    example = (ROOT / "config" / "pump.example.yaml").read_text().splitlines()
    fields = _bounded_fields()
    assert len(fields) >= 15
    for key, bounds in fields:
        short = key.rsplit(".", 1)[-1]
        named = re.compile(rf"`([\w.]*\.|…)?{short}`")
        rows = [line for line in readme if line.startswith("|") and named.search(line)]
        assert any(bounds in row for row in rows), f"README: no row for {key} with range {bounds}"
        lines = [line for line in example if re.match(rf"\s*#?\s*{short}:", line)]
        assert any(bounds in line for line in lines), f"config/pump.example.yaml: no line for {key} with range {bounds}"


# --------------------------------------------------------------------------- YAML alias bombs


def laughs(depth: int) -> str:
    lines = ["kv:", '  l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, depth + 1)]
    return "\n".join(lines) + "\n"


def test_yaml_aliases_that_expand_beyond_a_bound_are_refused_at_parse_time(tmp_path: Path) -> None:
    text = laughs(9) + "pumps:\n  csv:\n    type: csv\n    timeout: *l9\n"
    errs = errors_of(write(tmp_path, text))
    assert len(errs) == 1
    assert "aliases" in errs[0] and "expand" in errs[0]


def test_modest_yaml_aliases_still_work(tmp_path: Path) -> None:
    text = (
        "kv:\n"
        "  orgs: &orgs [org1, org2]\n"
        "pumps:\n"
        "  a: {type: csv, filters: {org_ids: *orgs}}\n"
        "  b: {type: stdout, filters: {skip_org_ids: *orgs}}\n"
    )
    config, _ = load(write(tmp_path, text), {})
    assert config.pumps["a"].filters.org_ids == ["org1", "org2"] == config.pumps["b"].filters.skip_org_ids


def test_an_error_message_renders_a_huge_shared_structure_with_bounded_work() -> None:
    """An alias bomb built in memory (aliases share objects, so it costs nothing until someone
    walks it): the formatter must not expand it to print it."""
    bomb: Any = ["lol"] * 9
    for _ in range(6):
        bomb = [bomb] * 9  # 9**7 ≈ 4.8 million strings, every level the same object
    with pytest.raises(ValidationError) as info:
        config_model.Config.model_validate({"purge_delay": bomb, "pumps": {"csv": {"type": "csv"}}})
    tracemalloc.start()
    lines = format_errors(info.value, model=config_model.Config)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert lines[0].startswith("purge_delay: Input should be a valid number (got [[[")
    assert len(lines[0]) < 200
    assert peak < 1_000_000, f"formatting one error allocated {peak} bytes"


def test_the_number_of_error_lines_is_capped(tmp_path: Path) -> None:
    doc = {"pumps": {"csv": {"type": "csv", "filters": {"response_codes": [f"x{i}" for i in range(5000)]}}}}
    errs = errors_of(write(tmp_path, json.dumps(doc), "pump.conf"))
    assert 20 <= len(errs) <= 51
    assert re.fullmatch(r"\.\.\. and \d+ more errors", errs[-1])


# --------------------------------------------------------------------------- JSON first


def test_tyks_tab_indented_pump_example_conf_loads(tmp_path: Path) -> None:
    """Tyk ships pump.example.conf indented with tabs: JSON allows them, YAML does not."""
    path = FIXTURES / "config" / "tyk-pump.example.conf"  # our own file, in the shape of Tyk's (tabs)
    assert "\t" in path.read_text()
    config, _ = load(path, {})
    assert config.purge_delay == 10
    assert config.pumps["mongo"].type == "mongo"
    assert config.pumps["mongo"].meta["collection_name"] == "tyk_analytics"
    assert config.uptime_pump_config is not None
    assert config.uptime_pump_config.collection_name == "tyk_uptime_analytics"
    assert config.analytics_storage_config.optimisation_max_idle == 100


def test_json_is_read_as_json_not_as_yaml(tmp_path: Path) -> None:
    """Where the two readings differ, a JSON file means JSON: ``1e1`` is a number, ``"\\/"`` a slash."""
    doc = '{\n\t"purge_delay": 1e1,\n\t"pumps": {"csv": {"type": "csv", "meta": {"csv_dir": "a\\/b"}}}\n}'
    config, _ = load(write(tmp_path, doc, "pump.conf"), {})
    assert config.purge_delay == 10.0
    assert config.pumps["csv"].meta["csv_dir"] == "a/b"


def test_a_json_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    errs = errors_of(write(tmp_path, '{\n\t"purge_delay": 10,\n\t"pumps": {,}\n}\n', "pump.conf"))
    assert len(errs) == 1
    assert "not valid JSON at line 3, column 12" in errs[0], errs


def test_a_yaml_syntax_error_still_gives_line_and_column(tmp_path: Path) -> None:
    errs = errors_of(write(tmp_path, "pumps:\n  csv: [unclosed\n"))
    assert "not valid YAML" in errs[0] and "line" in errs[0]


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "pump.conf"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"pumps": {"csv": {"type": "csv"}}}).encode())
    config, _ = load(path, {})
    assert "csv" in config.pumps


def test_deep_nesting_is_a_config_error_not_a_crash(tmp_path: Path) -> None:
    for name, text in (("deep.conf", '{"kv": ' + "[" * 100000 + "]" * 100000 + "}"), ("deep.yaml", "kv: " + "[" * 100000 + "]" * 100000)):
        errs = errors_of(write(tmp_path, text, name))
        assert "nested too deeply" in errs[0]
