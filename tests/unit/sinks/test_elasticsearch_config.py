"""Elasticsearch sink, pure parts: the meta block, auth headers, TLS, template bodies."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from pump.sinks.elasticsearch import template
from pump.sinks.elasticsearch.client import ServerInfo, auth_header, strip_credentials, tls_context
from pump.sinks.elasticsearch.config import Meta, redact_url
from pump.sinks.elasticsearch.sink import ElasticsearchSink

TYK_META: dict[str, Any] = {
    "meta_env_prefix": "TYK_PMP_PUMPS_ELASTICSEARCH_META",
    "index_name": "tyk_analytics",
    "elasticsearch_url": "http://es1:9200,http://es2:9200",
    "use_sniffing": False,
    "document_type": "tyk_analytics",
    "rolling_index": True,
    "extended_stats": True,
    "decode_base64": True,
    "generate_id": True,
    "version": "7",
    "disable_bulk": False,
    "bulk_config": {"workers": 2, "flush_interval": 60, "bulk_actions": 500, "bulk_size": 1048576},
    "auth_api_key_id": "",
    "auth_api_key": "",
    "auth_basic_username": "elastic",
    "auth_basic_password": "secret",
    "use_ssl": False,
    "ssl_insecure_skip_verify": False,
    "ssl_cert_file": "",
    "ssl_key_file": "",
    "ssl_ca_file": "",
    "mcp_index_name": "tyk_mcp",
}


def test_every_tyk_key_is_accepted() -> None:
    meta = Meta.model_validate(TYK_META)
    assert meta.urls == ["http://es1:9200", "http://es2:9200"]
    assert (meta.bulk_config.max_actions, meta.bulk_config.max_bytes, meta.bulk_config.concurrency) == (500, 1048576, 2)


def test_defaults_are_tyks() -> None:
    meta = Meta()
    assert (meta.index_name, meta.elasticsearch_url, meta.document_type) == ("tyk_analytics", "http://localhost:9200", "tyk_analytics")
    assert (meta.bulk_config.max_actions, meta.bulk_config.max_bytes, meta.bulk_config.concurrency) == (1000, 5 << 20, 1)


def test_bulk_config_zero_means_default_and_minus_one_disables() -> None:
    zero = Meta.model_validate({"bulk_config": {"workers": 0, "bulk_actions": 0, "bulk_size": 0}}).bulk_config
    assert (zero.max_actions, zero.max_bytes, zero.concurrency) == (1000, 5 << 20, 1)
    off = Meta.model_validate({"bulk_config": {"bulk_actions": -1, "bulk_size": -1}}).bulk_config
    assert (off.max_actions, off.max_bytes) == (0, 0)
    with pytest.raises(ValidationError):
        Meta.model_validate({"bulk_config": {"bulk_actions": -2}})


@pytest.mark.parametrize("version", ["", "3", "5", "6", "7", "8", "9", "opensearch", "OpenSearch", 7])
def test_versions_accepted(version: Any) -> None:
    assert Meta.model_validate({"version": version}).version == str(version).lower()


@pytest.mark.parametrize("version", ["2", "10", "elastic"])
def test_unknown_version_refused(version: str) -> None:
    with pytest.raises(ValidationError, match="not a supported version"):
        Meta.model_validate({"version": version})


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Tyk", "lower case"),
        ("a b", "must not contain"),
        ("a*", "must not contain"),
        ("_x", "must not start"),
        ("", "empty"),
        ("x:y", "contain"),
    ],
)
def test_bad_index_names_refused(name: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Meta.model_validate({"index_name": name})
    if name:
        with pytest.raises(ValidationError, match=message):
            Meta.model_validate({"mcp_index_name": name})


def test_unknown_key_refused() -> None:
    with pytest.raises(ValidationError, match="extra"):
        Meta.model_validate({"index_nam": "x"})


@pytest.mark.parametrize("url", ["es:9200", "ftp://x", "http://", "http://a,ftp://b"])
def test_bad_urls_refused(url: str) -> None:
    with pytest.raises(ValidationError, match="URL"):
        Meta.model_validate({"elasticsearch_url": url})


def test_half_an_api_key_or_certificate_refused() -> None:
    with pytest.raises(ValidationError, match="together"):
        Meta.model_validate({"auth_api_key_id": "id"})
    with pytest.raises(ValidationError, match="together"):
        Meta.model_validate({"ssl_cert_file": "/c.pem"})


# --- auth ------------------------------------------------------------------------------------------


def test_api_key_header_wins_over_basic() -> None:
    meta = Meta.model_validate({"auth_api_key_id": "kid", "auth_api_key": "kkey", "auth_basic_username": "u", "auth_basic_password": "p"})
    assert auth_header(meta) == "ApiKey " + base64.b64encode(b"kid:kkey").decode()


def test_basic_auth_header() -> None:
    meta = Meta.model_validate({"auth_basic_username": "elastic", "auth_basic_password": "pa:ss"})
    assert auth_header(meta) == "Basic " + base64.b64encode(b"elastic:pa:ss").decode()


def test_url_credentials_used_only_without_explicit_ones() -> None:
    url, user, password = strip_credentials("https://us%40er:p%3Ass@es.example.com:9243/prefix")
    assert (url, user, password) == ("https://es.example.com:9243/prefix", "us@er", "p:ss")
    assert auth_header(Meta(), user, password) == "Basic " + base64.b64encode(b"us@er:p:ss").decode()
    explicit = Meta.model_validate({"auth_basic_username": "a", "auth_basic_password": "b"})
    assert auth_header(explicit, user, password) == "Basic " + base64.b64encode(b"a:b").decode()
    assert auth_header(Meta()) is None


def test_urls_are_redacted_for_logs() -> None:
    assert redact_url("https://user:secret@es:9200") == "https://user:<redacted>@es:9200"
    assert "secret" not in redact_url("http://u:secret@a:1")


def test_validation_errors_do_not_echo_credentials_in_urls() -> None:
    with pytest.raises(ValidationError) as info:
        Meta.model_validate({"elasticsearch_url": "ftp://u:hunter2@x"})
    assert "hunter2" not in str(info.value.errors()[0]["msg"])


# --- TLS -------------------------------------------------------------------------------------------


def test_tls_verifies_by_default() -> None:
    ctx = tls_context(Meta())
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname


def test_tls_skip_verify_only_when_asked() -> None:
    ctx = tls_context(Meta.model_validate({"ssl_insecure_skip_verify": True}))
    assert ctx.verify_mode == ssl.CERT_NONE and not ctx.check_hostname


def test_tls_missing_ca_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        tls_context(Meta.model_validate({"ssl_ca_file": str(tmp_path / "missing.pem")}))


# --- server detection & type decision ----------------------------------------------------------------


def test_server_info_from_root() -> None:
    os_info = ServerInfo.from_root({"version": {"distribution": "opensearch", "number": "2.19.1"}})
    assert os_info == ServerInfo("opensearch", "2.19.1")
    assert os_info.has_composable_templates and not os_info.has_mapping_types
    es7 = ServerInfo.from_root({"version": {"number": "7.10.2", "build_flavor": "default"}})
    assert es7 is not None and es7.product == "elasticsearch" and es7.has_composable_templates and not es7.has_mapping_types
    assert not ServerInfo("elasticsearch", "7.7.1").has_composable_templates
    assert ServerInfo("elasticsearch", "6.8.0").has_mapping_types
    assert ServerInfo("elasticsearch", "9.1.0").has_composable_templates
    assert ServerInfo.from_root({"ok": True}) is None


@pytest.mark.parametrize(
    ("version", "server", "doc_type"),
    [
        ("6", ServerInfo("opensearch", "2.19.1"), None),  # a Tyk "6" config pointed at OpenSearch
        ("3", ServerInfo("elasticsearch", "8.15.0"), None),
        ("", ServerInfo("elasticsearch", "6.8.23"), "tyk_analytics"),
        ("7", ServerInfo("elasticsearch", "7.10.2"), None),
        ("6", None, "tyk_analytics"),  # version not readable: trust the config
        ("", None, None),
    ],
)
def test_type_follows_the_server(version: str, server: ServerInfo | None, doc_type: str | None) -> None:
    sink = ElasticsearchSink("es", Meta.model_validate({"version": version}))
    sink.server = server
    assert sink._decide_type() == doc_type


# --- template ----------------------------------------------------------------------------------------


def test_template_types_ids_dates_numbers_and_geo() -> None:
    props = template.properties(extended=False, decoded=False)
    for name in ("api_id", "org_id", "api_key", "oauth_id", "http_method", "tags", "event_kind"):
        assert props[name]["type"] == "keyword", name
    assert props["@timestamp"] == {"type": "date"}
    for name in ("request_time_ms", "content_length", "latency_total_ms", "latency_upstream_ms", "latency_gateway_ms"):
        assert props[name] == {"type": "long"}, name
    assert props["response_code"] == {"type": "integer"}
    assert props["geo_location"] == {"type": "geo_point"}
    assert "raw_request" not in props


def test_template_raw_fields_indexed_only_when_decoded() -> None:
    assert template.properties(True, False)["raw_request"] == {"type": "text", "index": False}
    assert template.properties(True, True)["raw_response"] == {"type": "text"}


def test_composable_and_legacy_bodies() -> None:
    body = template.composable(["a", "a-*"], 100, {"number_of_replicas": 0}, False, False)
    assert body["index_patterns"] == ["a", "a-*"] and body["priority"] == 100
    assert body["template"]["settings"] == {"number_of_replicas": 0}
    assert "properties" in body["template"]["mappings"]
    typed = template.legacy(["a"], 5, {}, False, False, "tyk_analytics")
    assert typed["order"] == 5 and "properties" in typed["mappings"]["tyk_analytics"] and "settings" not in typed
    assert "properties" in template.legacy(["a"], 5, {}, False, False, None)["mappings"]


def test_default_mapping_adds_tyks_keyword_subfields() -> None:
    """Tyk's indices (dynamic mapping) have ``api_id.keyword`` etc.; the default keeps our keyword
    field and adds that subfield, for every string of Tyk's document, not for our extras."""
    props = template.properties(extended=True, decoded=False)
    for name in template.TYK_STRING_FIELDS:
        assert props[name]["type"] == "keyword", name
        assert props[name]["fields"] == {"keyword": {"type": "keyword", "ignore_above": 256}}, name
    for name in ("event_kind", "host", "geo_country_iso_code"):
        assert "fields" not in props[name], name
    dynamic = template.mappings(False, False)["dynamic_templates"][0]["strings_as_keywords"]["mapping"]
    assert dynamic["fields"] == {"keyword": {"type": "keyword", "ignore_above": 256}}


def test_tyk_string_mapping_is_elasticsearchs_dynamic_one() -> None:
    props = template.properties(True, False, "tyk")
    tyk = {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}
    for name in (*template.TYK_STRING_FIELDS, "raw_request", "raw_response"):
        assert props[name] == tyk, name
    assert props["event_kind"] == {"type": "keyword"} and props["request_time_ms"] == {"type": "long"}
    assert "dynamic_templates" not in template.mappings(False, False, "tyk")


def test_keyword_string_mapping_is_the_earlier_one() -> None:
    props = template.properties(False, False, "keyword")
    assert props["api_id"] == {"type": "keyword", "ignore_above": 1024}
    assert props["request_uri"] == {"type": "keyword", "ignore_above": 4096}
    with pytest.raises(ValueError, match="string_mapping"):
        template.properties(False, False, "texty")
    with pytest.raises(ValueError, match="string_mapping"):
        Meta.model_validate({"string_mapping": "texty"})
