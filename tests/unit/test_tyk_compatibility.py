"""A Tyk ``pump.conf`` with all 33 pump types and every key of Tyk's conf structs
(tests/fixtures/config/tyk-all-pumps.conf, written from Tyk Pump's ``pumps/*.go`` and
``config.go``): every key loads or is refused as not implemented, with a clear message; every key
this pump honours differently warns, saying what changes; and docs/tyk-compatibility.md lists
every key with the status the code has."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from pump import sinks
from pump.config.compat import DIFFERENT_ON_PURPOSE, TOP_LEVEL_DIFFERENT, When
from pump.config.load import NO_EFFECT, validate
from pump.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
CONF: dict[str, Any] = json.loads((ROOT / "tests/fixtures/config/tyk-all-pumps.conf").read_text())
DOC = (ROOT / "docs/tyk-compatibility.md").read_text()
#: Free-form maps in Tyk's structs (their keys are the user's, not settings).
FREE_FORM = {"meta_data", "field_name_mappings"}


def tyk_type(pump: dict[str, Any]) -> str:
    return str(pump.get("type") or pump.get("name"))


def loadable(tmp_path: Path) -> dict[str, Any]:
    """The fixture without the types this pump does not implement, CSV writing under tmp."""
    conf = copy.deepcopy(CONF)
    conf["pumps"] = {n: p for n, p in conf["pumps"].items() if tyk_type(p) in sinks.SINKS}
    conf["pumps"]["csv"]["meta"]["csv_dir"] = str(tmp_path / "csv")
    return conf


def meta_keys(meta: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys of a ``meta`` block (``name[].key`` inside lists of objects)."""
    out: list[str] = []
    for key, value in meta.items():
        out.append(prefix + key)
        if isinstance(value, dict) and value and key not in FREE_FORM:
            out += meta_keys(value, f"{prefix}{key}.")
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            merged: dict[str, Any] = {}
            for item in value:
                merged.update(item)
            out += meta_keys(merged, f"{prefix}{key}[].")
    return out


def fixture_keys(type_name: str) -> list[str]:
    pump = next(p for p in CONF["pumps"].values() if tyk_type(p) == type_name)
    return [k for k in dict.fromkeys(meta_keys(pump["meta"])) if k != "meta_env_prefix"]


def test_the_fixture_has_every_tyk_type_once() -> None:
    types = [tyk_type(p) for n, p in CONF["pumps"].items() if n != "legacy_name"]
    assert len(types) == 33 == len(set(types))
    assert set(types) == sinks.TYK_TYPES


def test_every_key_loads_or_its_pump_type_is_named_not_implemented() -> None:
    with pytest.raises(ConfigError) as refused:
        validate(copy.deepcopy(CONF))
    problems = refused.value.errors
    missing = [n for n, p in CONF["pumps"].items() if tyk_type(p) not in sinks.SINKS]
    assert missing  # influx, segment, … (see docs/tyk-compatibility.md)
    expected = [f"pumps.{n}.type: '{tyk_type(CONF['pumps'][n])}' is a Tyk Pump type that this pump does not implement" for n in missing]
    assert [p.split("; supported types")[0] for p in problems] == expected
    assert all(p.endswith("; supported types: " + ", ".join(sorted(sinks.SINKS))) for p in problems)


def test_every_key_of_the_implemented_pumps_is_read(tmp_path: Path) -> None:
    """Models forbid unknown keys, so loading proves each key is a setting; it was also *read*
    (set on the model), not dropped, down to nested blocks."""
    config, _ = validate(loadable(tmp_path))
    for name, raw in loadable(tmp_path)["pumps"].items():
        meta = config.pumps[name].validated_meta()
        for key in meta_keys(raw["meta"]):
            assert _is_set(meta, key.split(".")), (name, key)


def _is_set(node: Any, parts: list[str]) -> bool:
    name = parts[0].removesuffix("[]")
    if name not in node.model_fields_set:
        return False
    value = getattr(node, name)
    if len(parts) == 1 or isinstance(value, dict):
        return True
    if parts[0].endswith("[]"):
        return any(_is_set(item, parts[1:]) for item in value)
    return _is_set(value, parts[1:])


def test_keys_honoured_differently_warn_saying_what_changes(tmp_path: Path) -> None:
    _, warnings = validate(loadable(tmp_path))
    assert (
        "pumps.elasticsearch.meta.rolling_index: the -YYYY.MM.DD suffix is each record's own date, not the wall clock at write time"
        in warnings
    )
    assert any(w.startswith("pumps.sql.meta.log_level: no effect") for w in warnings)
    assert any(w.startswith("pumps.mongo_pump_selective.meta.max_document_size_bytes: a larger record is dead-lettered") for w in warnings)
    assert any(w.startswith("storage_expiration_time: accepted for Tyk compatibility but has no effect") for w in warnings)
    # Tyk's default spelled out changes nothing, so it does not warn.
    assert not any(w.startswith("pumps.elasticsearch.meta.use_sniffing") for w in warnings)
    assert not any(w.startswith("pumps.prometheus.meta.custom_metrics[].obfuscate_api_keys_length") for w in warnings)


#: A value that makes each table entry fire (Tyk's default would not, except for ``When`` ones).
TRIGGER: dict[str, Any] = {
    "driver": "mgo", "max_document_size_bytes": 1000, "enable_aggregate_self_healing": True,
    "use_sniffing": True, "rolling_index": True, "bulk_config.flush_interval": 5, "version": "7", "use_ssl": True,
    "log_level": "info", "mysql.default_string_size": 300, "mysql.disable_datetime_precision": True,
    "mysql.dont_support_rename_index": True, "mysql.dont_support_rename_column": True,
    "mysql.skip_initialize_with_version": True, "ignore_aggregations": ["apikeys"], "max_retries": 3,
    "enable_bulk": False, "bulk_config.event_queue_size": 5, "bulk_config.timer_wake_up_seconds": 9, "timeout": 10,
    "custom_metrics[].buckets": [1, 5], "custom_metrics[].obfuscate_api_keys_length": 6, "buffered": False,
    "transport": "tcp", "queue_dir": "/tmp/logzio-buffer", "drain_duration": "3s", "disk_threshold": 98,
    "check_disk_space": True,
}  # fmt: skip


@pytest.mark.parametrize(("type_name", "key"), [(t, k) for t, keys in DIFFERENT_ON_PURPOSE.items() for k in keys])
def test_each_different_key_warns_when_set(type_name: str, key: str, tmp_path: Path) -> None:
    conf = loadable(tmp_path)
    name = next(n for n, p in conf["pumps"].items() if tyk_type(p) == type_name)
    node: Any = conf["pumps"][name]["meta"]
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part.removesuffix("[]"), {})
        node = node[-1] if isinstance(node, list) else node  # the last custom metric is the histogram
    node[parts[-1]] = TRIGGER[key]
    entry = DIFFERENT_ON_PURPOSE[type_name][key]
    _, warnings = validate(conf)
    why = entry.why if isinstance(entry, When) else entry
    assert f"pumps.{name}.meta.{key}: {why}" in warnings


def test_the_different_keys_are_tyks_keys() -> None:
    for type_name, keys in DIFFERENT_ON_PURPOSE.items():
        tyk = fixture_keys(type_name)
        assert [k for k in keys if k not in tyk] == [], type_name


def test_top_level_different_keys_warn() -> None:
    _, warnings = validate({"omit_detailed_recording": True, "pumps": {"d": {"type": "dummy"}}})
    assert f"omit_detailed_recording: {TOP_LEVEL_DIFFERENT['omit_detailed_recording']}" in warnings


# --------------------------------------------------------------------------- the page


def _section(title: str) -> str:
    start = DOC.index(f"\n{title}")
    end = DOC.find("\n#", start + len(title) + 1)
    return DOC[start : end if end != -1 else None]


def _rows(text: str) -> dict[str, str]:
    """``key`` → status of the rows of the markdown tables in ``text``."""
    return {m[1]: m[2] for m in re.finditer(r"^\| `([^`]+)` \| ([^|]+?) \|", text, re.M)}


def test_the_page_lists_every_pump_type_with_its_status() -> None:
    rows = _rows(_section("## Pump types"))
    assert set(rows) == sinks.TYK_TYPES
    for type_name, status in rows.items():
        assert status == ("same" if type_name in sinks.SINKS else "not implemented"), type_name


def test_the_page_lists_every_top_level_key() -> None:
    tyk = set(CONF) - {"pumps"} | {"pumps"}
    rows = _rows(_section("## Top-level `pump.conf` keys"))
    assert set(rows) == tyk
    for key in (*NO_EFFECT, *TOP_LEVEL_DIFFERENT):
        assert rows[key] == "different on purpose", key


@pytest.mark.parametrize("type_name", sorted(t for t in sinks.TYK_TYPES if t in sinks.SINKS))
def test_the_page_lists_every_meta_key_of_each_implemented_type(type_name: str) -> None:
    rows = _rows(_section(f"### `{type_name}`"))
    assert list(rows) == fixture_keys(type_name)
    different = DIFFERENT_ON_PURPOSE.get(type_name, {})
    for key, status in rows.items():
        assert status == ("different on purpose" if key in different else "same"), (type_name, key)
