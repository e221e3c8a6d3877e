"""Config loading: Tyk pump.conf compatibility, environment overrides, and error messages that
name the key and say what is expected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pump.cli import main
from pump.config.load import load
from pump.errors import ConfigError
from pump.redact import preview

CONFIG_DIR = Path(__file__).resolve().parent.parent.parent / "config"

TYK_CONF = {
    "analytics_storage_type": "redis",
    "analytics_storage_config": {
        "type": "redis", "host": "localhost", "port": 6379, "hosts": None, "username": "", "password": "",
        "database": 0, "optimisation_max_idle": 100, "optimisation_max_active": 0, "enable_cluster": False,
        "redis_use_ssl": False, "redis_ssl_insecure_skip_verify": False,
    },
    "log_level": "info",
    "purge_delay": 10,
    "purge_chunk": 0,
    "storage_expiration_time": 60,
    "health_check_endpoint_name": "hello",
    "health_check_endpoint_port": 8083,
    "dont_purge_uptime_data": True,
    "pumps": {"csv": {"type": "csv", "meta": {"csv_dir": "./bar"}, "filters": {"org_ids": ["org1", "org2"]}, "timeout": 5}},
}  # fmt: skip


def write(tmp_path: Path, doc: dict | str, name: str = "pump.conf") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def errors_of(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(path, env or {})
    return info.value.errors


def test_tyk_json_pump_conf_loads_unchanged(tmp_path: Path) -> None:
    config, warnings = load(write(tmp_path, TYK_CONF), {})
    assert config.purge_delay == 10
    assert config.pumps["csv"].meta["csv_dir"] == "./bar"
    assert config.pumps["csv"].filters.org_ids == ["org1", "org2"]
    assert config.health_check_endpoint_name == "hello"
    assert config.analytics_storage_config.prefix == "analytics-"
    assert any("storage_expiration_time" in w for w in warnings)


@pytest.mark.parametrize(
    "path", sorted(p for p in CONFIG_DIR.iterdir() if p.suffix in (".yaml", ".yml", ".json", ".conf")), ids=lambda p: p.name
)
def test_every_shipped_example_validates(path: Path) -> None:
    assert main(["validate", "--config", str(path)]) == 0


def test_env_overrides_use_tyk_names(tmp_path: Path) -> None:
    env = {
        "TYK_PMP_PURGEDELAY": "3",
        "TYK_PMP_ANALYTICSSTORAGECONFIG_HOST": "redis.internal",
        "TYK_PMP_ANALYTICSSTORAGECONFIG_MAXACTIVE": "50",
        "TYK_PMP_ANALYTICSSTORAGECONFIG_ADDRS": "a:1,b:2",
        "TYK_PMP_PUMPS_CSV_META_CSVDIR": "/data/csv",
        "TYK_PMP_PUMPS_CSV_TIMEOUT": "7",
        "TYK_PMP_PUMPS_CSV_FILTERS_SKIPPEDRESPONSECODES": "200,204",
        "TYK_PMP_PUMPS_OUT_TYPE": "stdout",
        "TYK_PMP_PUMPS_OUT_META_FORMAT": "json",
        "TYK_PMP_DELIVERY_MAXATTEMPTS": "4",
    }
    config, _ = load(write(tmp_path, TYK_CONF), env)
    assert config.purge_delay == 3
    assert config.analytics_storage_config.host == "redis.internal"
    assert config.analytics_storage_config.optimisation_max_active == 50
    assert config.analytics_storage_config.addresses() == [("a", 1), ("b", 2)]
    assert config.pumps["csv"].meta["csv_dir"] == "/data/csv"
    assert config.pumps["csv"].timeout == 7
    assert config.pumps["csv"].filters.skip_response_codes == [200, 204]
    assert config.pumps["out"].type == "stdout" and config.pumps["out"].meta["format"] == "json"
    assert config.delivery.max_attempts == 4


def test_pump_defined_only_by_env_and_omit_config_file(tmp_path: Path) -> None:
    env = {"TYK_PMP_OMITCONFIGFILE": "true", "TYK_PMP_PUMPS_CSV_META_CSVDIR": "/x"}
    config, _ = load(tmp_path / "missing.conf", env)
    assert config.pumps["csv"].type == "csv"


def test_legacy_redis_env_prefix(tmp_path: Path) -> None:
    config, _ = load(write(tmp_path, TYK_CONF), {"TYK_PMP_REDIS_PORT": "6390"})
    assert config.analytics_storage_config.port == 6390


def test_errors_name_the_key_and_what_is_expected(tmp_path: Path) -> None:
    bad = json.loads(json.dumps(TYK_CONF))
    bad["purge_delay"] = "soon"
    bad["purge_dely"] = 5
    bad["analytics_storage_config"]["port"] = 70000
    bad["pumps"]["csv"]["meta"]["csv_dirr"] = "x"
    bad["pumps"]["k"] = {"type": "influx"}
    bad["pumps"]["z"] = {"type": "zeppelin"}
    errs = errors_of(write(tmp_path, bad))
    text = "\n".join(errs)
    assert "purge_delay: Input should be a valid number" in text
    assert "purge_dely: unknown key (expected one of: analytics_storage_type" in text
    assert "analytics_storage_config.port: Input should be less than or equal to 65535 (got 70000)" in text
    assert "pumps.csv.meta.csv_dirr: unknown key (expected one of: meta_env_prefix, csv_dir)" in text
    assert "pumps.k.type: 'influx' is a Tyk Pump type that this pump does not implement" in text
    assert "pumps.z.type: unknown pump type 'zeppelin'" in text


def test_secrets_are_never_echoed(tmp_path: Path) -> None:
    bad = json.loads(json.dumps(TYK_CONF))
    bad["analytics_storage_config"]["password"] = {"not": "a string", "secret": "hunter2"}
    errs = errors_of(write(tmp_path, bad))
    assert any(e.startswith("analytics_storage_config.password:") for e in errs)
    assert "hunter2" not in "\n".join(errs)
    assert preview("postgres://u:pw@h/db") == "'postgres://u:<redacted>@h/db'"


def test_syntax_error_names_the_line(tmp_path: Path) -> None:
    errs = errors_of(write(tmp_path, "pumps:\n  csv: [unclosed\n"))
    assert "line" in errs[0] and "not valid YAML/JSON" in errs[0]


def test_no_pumps_and_reserved_names(tmp_path: Path) -> None:
    assert "pumps: no pump is configured" in errors_of(write(tmp_path, {"purge_delay": 1}))[0]
    errs = errors_of(write(tmp_path, {"pumps": {"uptime": {"type": "csv"}}}))
    assert any("reserved" in e for e in errs)


def test_purge_delay_zero_is_rejected(tmp_path: Path) -> None:
    """Tyk hangs forever with purge_delay 0 (§10); here it is a config error."""
    errs = errors_of(write(tmp_path, {**TYK_CONF, "purge_delay": 0}))
    assert errs == ["purge_delay: Input should be greater than or equal to 0.1 (got 0); the range is 0.1 to 3600"]


def test_validate_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, TYK_CONF)
    assert main(["validate", "--config", str(good)]) == 0
    bad = write(tmp_path, {**TYK_CONF, "pumps": {"csv": {"type": "csv", "meta": {"csv_dirr": "x"}}}}, "bad.conf")
    assert main(["validate", "--config", str(bad)]) == 78
    err = capsys.readouterr().err
    assert "invalid configuration" in err and "pumps.csv.meta.csv_dirr: unknown key" in err


def test_claim_size_and_delivery_overrides(tmp_path: Path) -> None:
    doc = {**TYK_CONF, "purge_chunk": 700, "delivery": {"max_attempts": 3}}
    doc["pumps"] = {"csv": {"type": "csv", "delivery": {"max_attempts": 9, "concurrency": 2}}, "out": {"type": "stdout"}}
    config, _ = load(write(tmp_path, doc), {})
    assert config.claim_size() == 700
    assert config.delivery_for("csv").max_attempts == 9 and config.delivery_for("csv").concurrency == 2
    assert config.delivery_for("out").max_attempts == 3


def test_assigning_a_setting_keeps_every_other_setting_including_null_defaults() -> None:
    """Validated assignment re-runs the "null means default" validator over the whole model; it
    once dropped every field whose value was None, so reading one afterwards raised."""
    from pump.config.model import Config, PumpConfig

    config = Config()
    config.purge_delay = 5
    assert config.purge_delay == 5.0
    assert config.uptime_pump_config is None
    pump = PumpConfig(type="csv")
    pump.type = "dummy"
    assert pump.type == "dummy"
    for name, field in PumpConfig.model_fields.items():
        if field.default is None:
            assert getattr(pump, name) is None, name


def test_workers_default_to_auto_and_are_set_by_the_file_or_the_environment(tmp_path: Path) -> None:
    config, _ = load(write(tmp_path, TYK_CONF), {})
    assert config.workers == "auto"
    config, _ = load(write(tmp_path, {**TYK_CONF, "workers": 3}), {})
    assert config.workers == 3
    config, warnings = load(write(tmp_path, {**TYK_CONF, "workers": 3}), {"TYK_PMP_WORKERS": "AUTO"})
    assert config.workers == "auto" and not [w for w in warnings if "WORKERS" in w]
    config, _ = load(write(tmp_path, TYK_CONF), {"TYK_PMP_WORKERS": "2"})
    assert config.workers == 2
    for bad in (0, 257, "many", True):
        (err,) = errors_of(write(tmp_path, {**TYK_CONF, "workers": bad}))
        assert err.startswith("workers: ") and "give a number of processes from 1 to 256, or auto" in err
