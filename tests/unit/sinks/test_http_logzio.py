"""``type: logzio`` (Tyk's Logz.io pump) on the http pump: Tyk's keys validate, the ones about
Logz.io's disk queue are accepted with a warning saying what changes, broken values fail naming
the key, and the token stays out of logs."""

from __future__ import annotations

from typing import Any

import pytest

from pump.config.load import validate
from pump.errors import ConfigError
from pump.redact import scrub
from pump.sinks import meta_model
from pump.sinks.http.logzio import Meta


def _validate(meta: dict[str, Any]) -> tuple[Any, list[str]]:
    return validate({"pumps": {"logz": {"type": "logzio", "meta": meta}}})


def test_tyks_logzio_config_becomes_an_http_batch_to_the_bulk_listener() -> None:
    config, warnings = _validate({"token": "tok-123/abc", "url": "https://listener-eu.logz.io:8071"})
    assert warnings == []
    meta = config.pumps["logz"].validated_meta()
    assert meta_model("logzio") is Meta and isinstance(meta, Meta)
    http = meta.to_http()
    assert (http.url, http.format, http.batch_max_records, http.batch_max_bytes) == (
        "https://listener-eu.logz.io:8071/?token=tok-123%2Fabc",
        "logzio",
        0,
        3 * 1024 * 1024,
    )
    assert Meta.model_validate({"token": "t", "log_type": "tyk pump"}).bulk_url == "https://listener.logz.io:8071/?token=t&type=tyk%20pump"


def test_disk_queue_keys_are_accepted_with_a_warning_saying_what_changes() -> None:
    _, warnings = _validate(
        {"token": "t", "queue_dir": "/var/tmp/logzio", "drain_duration": "10s", "disk_threshold": 90, "check_disk_space": False}
    )
    assert [w.split(":")[0] for w in warnings] == [
        "pumps.logz.meta.queue_dir", "pumps.logz.meta.drain_duration", "pumps.logz.meta.disk_threshold",
        "pumps.logz.meta.check_disk_space",
    ]  # fmt: skip
    assert all("records wait in Redis, claimed, until Logz.io answers 2xx" in w for w in warnings)
    assert "nothing is written to this directory" in warnings[0]
    assert "each batch is sent as soon as it is claimed" in warnings[1]
    assert "no record is ever dropped for a full disk" in warnings[2]


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({}, "pumps.logz.meta.token"),
        ({"token": ""}, "token is required"),
        ({"token": "t", "drain_duration": "3 seconds"}, "pumps.logz.meta.drain_duration"),
        ({"token": "t", "disk_threshold": 101}, "pumps.logz.meta.disk_threshold"),
        ({"token": "t", "url": "ftp://listener"}, "is not an http:// or https:// URL"),
        ({"token": "t", "url": "https://listener.logz.io:8071/?token=x"}, "without a query"),
        ({"token": "t", "queue": "/x"}, "pumps.logz.meta.queue"),
    ],
)
def test_broken_values_fail_naming_the_key(meta: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("?", r"\?")):
        _validate(meta)


def test_the_token_in_the_url_is_scrubbed_from_log_lines() -> None:
    meta = Meta.model_validate({"token": "logzio-secret-token-42"})
    assert "logzio-secret-token-42" not in scrub(f"POST {meta.bulk_url} failed")
