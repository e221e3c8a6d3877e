"""A Tyk JSON pump.conf is read as JSON, tabs and all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pump.config.load import load
from pump.errors import ConfigError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def write(tmp_path: Path, text: str, name: str = "pump.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def errors_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(path, {})
    return info.value.errors


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
