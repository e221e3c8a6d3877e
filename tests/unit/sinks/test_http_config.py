"""``http``, ``splunk`` and ``moesif`` meta blocks: what validates, what fails naming the key, and
how Tyk's Splunk/Moesif keys become HTTP settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from pump.config.load import load
from pump.errors import ConfigError
from pump.redact import scrub
from pump.sinks import meta_model
from pump.sinks.http.client import auth_headers
from pump.sinks.http.config import Meta
from pump.sinks.http.moesif import Meta as MoesifMeta
from pump.sinks.http.splunk import Meta as SplunkMeta


def test_types_are_registered() -> None:
    assert meta_model("http") is Meta
    assert meta_model("splunk") is SplunkMeta
    assert meta_model("MOESIF") is MoesifMeta


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"url": "ftp://h/x"}, "is not an http:// or https:// URL"),
        ({"url": "http://h/a/{nope}"}, "placeholder {nope} names no record field"),
        ({"url": "http://{api_id}.h/x"}, "not in the host"),
        ({"url": "http://h/x", "format": "xml"}, "is not a body format"),
        ({"url": "http://h/x", "fields": ["pathh"]}, "'pathh' not in the ndjson document"),
        ({"url": "http://h/x", "format": "moesif", "fields": ["path"]}, "has a fixed document"),
        ({"url": "http://h/x", "headers": {"Content-Length": "1"}}, "is set by the pump itself"),
        ({"url": "http://h/x", "auth": {"type": "bearer"}}, "needs token"),
        ({"url": "http://h/x", "auth": {"type": "bearer", "token_env": "PUMP_TEST_UNSET_TOKEN"}}, "PUMP_TEST_UNSET_TOKEN is not set"),
        ({"url": "http://h/x", "auth": {"type": "bearer", "token": "a", "token_env": "X"}}, "set only one of token, token_env"),
        ({"url": "http://h/x", "auth": {"type": "bearer", "token_file": "/nonexistent/t"}}, "token_file: cannot read /nonexistent/t"),
        ({"url": "http://h/x", "ssl_cert_file": "/tmp/c.pem"}, "must be set together"),
        ({"url": "http://h/x", "done_codes": [700]}, "is not an HTTP status"),
        ({"url": "http://h/x", "method": "GET"}, "Input should be 'POST', 'PUT' or 'PATCH'"),
    ],
)
def test_invalid_meta_is_refused_with_the_reason(meta: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("{", r"\{").replace("}", r"\}").replace("(", r"\(")):
        Meta.model_validate(meta)


def test_secrets_from_env_and_file_are_resolved_and_redacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUMP_TEST_HTTP_TOKEN", "env-token-123456")
    meta = Meta.model_validate({"url": "https://h/x", "auth": {"type": "bearer", "token_env": "PUMP_TEST_HTTP_TOKEN"}})
    assert auth_headers(meta) == {"Authorization": "Bearer env-token-123456"}
    assert "env-token" not in repr(meta) and "env-token" not in str(meta.model_dump())
    assert scrub("refused token env-token-123456") == "refused token <redacted>"
    (tmp_path / "pw").write_text("file-password-99\n")
    meta = Meta.model_validate({"url": "https://h/x", "auth": {"type": "basic", "username": "u", "password_file": str(tmp_path / "pw")}})
    assert auth_headers(meta) == {"Authorization": "Basic dTpmaWxlLXBhc3N3b3JkLTk5"}  # u:file-password-99
    meta = Meta.model_validate({"url": "https://h/x", "auth": {"type": "api_key", "token": "k-000000", "header": "X-Key"}})
    assert auth_headers(meta) == {"X-Key": "k-000000"}


def test_splunk_keys_map_onto_http() -> None:
    meta = SplunkMeta.model_validate(
        {
            "collector_token": "hec-token-abcdef",
            "collector_url": "https://splunk:8088/services/collector/event?channel=c1",
            "enable_batch": True,
            "ssl_insecure_skip_verify": True,
            "ssl_server_name": "splunk.internal",
        }
    )
    http = meta.to_http()
    assert http.url == "https://splunk:8088/services/collector/event/1.0?channel=c1"
    assert auth_headers(http) == {"Authorization": "Splunk hec-token-abcdef"}
    assert (http.format, http.batch_max_records, http.batch_max_bytes) == ("splunk", 0, 838860800)
    assert http.ssl_insecure_skip_verify and http.ssl_server_name == "splunk.internal"
    single = SplunkMeta.model_validate({"collector_token": "t0000000", "collector_url": "http://s:8088"}).to_http()
    assert (single.url, single.batch_max_records, single.batch_max_bytes) == ("http://s:8088/services/collector/event/1.0", 1, 0)
    with pytest.raises(ValidationError, match="HEC token is required"):
        SplunkMeta.model_validate({"collector_token": "", "collector_url": "http://s:8088"})
    with pytest.raises(ValidationError, match="'nope' not in the splunk document"):
        SplunkMeta.model_validate({"collector_token": "t", "collector_url": "http://s", "fields": ["nope"]})


def test_moesif_keys_map_onto_http() -> None:
    meta = MoesifMeta.model_validate(
        {"application_id": "moesif-app-id-1", "enable_bulk": True, "bulk_config": {"batch_size": 50, "api_endpoint": "http://127.0.0.1:9/"}}
    )
    http = meta.to_http()
    assert (http.url, http.format, http.gzip, http.batch_max_records) == ("http://127.0.0.1:9/v1/events/batch", "moesif", True, 50)
    assert auth_headers(http) == {"X-Moesif-Application-Id": "moesif-app-id-1"}
    assert MoesifMeta.model_validate({"application_id": "x"}).to_http().url == "https://api.moesif.net/v1/events/batch"


def test_tyk_env_overrides_reach_splunk_meta(tmp_path: Path) -> None:
    conf = tmp_path / "pump.conf"
    conf.write_text('{"pumps": {"splunk": {"type": "splunk", "meta": {"collector_url": "http://s:8088"}}}}')
    env = {
        "TYK_PMP_PUMPS_SPLUNK_META_COLLECTORTOKEN": "from-env-token-1",
        "TYK_PMP_PUMPS_SPLUNK_META_ENABLEBATCH": "true",
        "TYK_PMP_PUMPS_SPLUNK_META_FIELDS": "method,path,tags",
    }
    config, _ = load(conf, env)
    meta = SplunkMeta.model_validate(config.pumps["splunk"].meta)
    assert meta.collector_token.get_secret_value() == "from-env-token-1"
    assert meta.enable_batch and meta.fields == ["method", "path", "tags"]


def test_a_tyk_splunk_pump_conf_validates(tmp_path: Path) -> None:
    conf = tmp_path / "pump.conf"
    conf.write_text(
        """{"pumps": {"splunk": {"type": "splunk", "meta": {
            "collector_token": "<token>", "collector_url": "https://splunk:8088/services/collector/event",
            "ssl_insecure_skip_verify": false, "ssl_cert_file": "", "ssl_key_file": "", "ssl_server_name": "",
            "obfuscate_api_keys": true, "obfuscate_api_keys_length": 10,
            "fields": ["method", "host", "path", "response_code", "api_key", "time_stamp", "tags"],
            "ignore_tag_prefix_list": ["key-"], "enable_batch": true, "batch_max_content_length": 838860800,
            "max_retries": 2, "meta_env_prefix": ""}},
          "moesif": {"type": "moesif", "meta": {"application_id": "app", "request_header_masks": ["Authorization"],
            "enable_bulk": true, "bulk_config": {"event_queue_size": 1000, "batch_size": 100, "timer_wake_up_seconds": 2},
            "authorization_header_name": "authorization", "authorization_user_id_field": "sub"}}}}"""
    )
    config, _ = load(conf, {})
    assert set(config.pumps) == {"splunk", "moesif"}


def test_http_pump_errors_name_the_key(tmp_path: Path) -> None:
    conf = tmp_path / "pump.conf"
    conf.write_text('{"pumps": {"hook": {"type": "http", "meta": {"url": "http://h/{apiid}", "gzipp": true}}}}')
    with pytest.raises(ConfigError) as info:
        load(conf, {})
    text = "\n".join(info.value.errors)
    assert "pumps.hook.meta.gzipp: unknown key" in text
    assert "placeholder {apiid} names no record field" in text


def test_the_config_example_has_the_three_types() -> None:
    root = Path(__file__).resolve().parents[3]
    config, _ = load(root / "config" / "pump.http.yaml", {})
    assert {name: p.type for name, p in config.pumps.items()} == {"webhook": "http", "splunk": "splunk", "moesif": "moesif"}
