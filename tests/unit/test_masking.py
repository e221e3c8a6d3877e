"""``mask`` (issue 13 item 2): the seed's examples (wso2-moesif-analytics.txt), headers inside the
base64 payloads, JSON body paths, copy on write, and ``pump validate`` messages."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import yaml

from pump.aggregate import aggregate_records
from pump.config.analytics import Mask
from pump.config.load import load
from pump.config.model import Config, PumpConfig
from pump.errors import ConfigError
from pump.transforms import build_view
from pump.transforms.masking import compile_mask, mask_http, mask_value
from tests.helpers import make_record


@pytest.mark.parametrize(
    ("fmt", "value", "masked"),
    [
        # The seed's "Masking Behavior Examples", exactly.
        ("IPV4", "192.168.1.98", "192.168.***.98"),
        ("IPV6", "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "2001:0db8:85a3:****:****:****:****:7334"),
        ("EMAIL", "john.doe@gmail.com", "*****@gmail.com"),
        ("STRING", "JohnDoe", "*****"),
        # Ours around them.
        ("IPV6", "2001:db8::1", "2001:0db8:0000:****:****:****:****:0001"),
        ("IP", "10.1.2.3", "10.1.***.3"),
        ("IP", "fe80::1", "fe80:0000:0000:****:****:****:****:0001"),
        ("IPV4", "gateway.local", "*****"),  # not an IPv4 address: masked whole, never let through
        ("IPV6", "not-an-ip", "*****"),
        ("EMAIL", "no-at-sign", "*****"),
        ("EMAIL", "a@b@example.org", "*****@example.org"),
        ("STRING", "x", "*****"),
        ("OBFUSCATE", "5e9d9544a1dcd60001d0ed20abcd", "****abcd"),  # Tyk's obfuscate_api_keys
        ("OBFUSCATE", "abcd", "--"),
        ("STRING", "", ""),  # nothing to hide
    ],
)
def test_formats(fmt: str, value: str, masked: str) -> None:
    assert mask_value(fmt, value) == masked


def test_obfuscate_length() -> None:
    assert mask_value("OBFUSCATE", "0123456789", 6) == "****456789"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


REQUEST = (
    "POST /login HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer s3cr3t-token\r\n"
    "cookie: session=abc\r\nContent-Type: application/json\r\nContent-Length: 61\r\n\r\n"
    '{"user":{"email":"john.doe@gmail.com","name":"John"},"pin":1234}'
)
RESPONSE = "HTTP/1.1 200 OK\r\nSet-Cookie: sid=xyz\r\nX-Api-Key: k1\r\nContent-Length: 2\r\n\r\n{}"


def test_headers_inside_the_base64_payload() -> None:
    masked = mask_http(b64(REQUEST), frozenset({b"authorization", b"cookie"}), {})
    text = base64.b64decode(masked).decode()
    assert "Authorization: *****\r\n" in text
    assert "cookie: *****\r\n" in text  # names match whatever their case
    assert "s3cr3t" not in text and "session=abc" not in text
    assert "Host: api.example.com\r\n" in text and text.endswith('"pin":1234}')


def test_body_paths_and_content_length() -> None:
    masked = mask_http(b64(REQUEST), frozenset(), {"user.email": "EMAIL", "$.pin": "STRING", "user.missing": "STRING"})
    head, body = base64.b64decode(masked).decode().split("\r\n\r\n", 1)
    assert json.loads(body) == {"user": {"email": "*****@gmail.com", "name": "John"}, "pin": "*****"}
    assert f"Content-Length: {len(body)}" in head
    assert "Authorization: Bearer s3cr3t-token" in head  # only what was asked


def test_body_wildcards() -> None:
    raw = b64('HTTP/1.1 200 OK\r\n\r\n{"items":[{"card":"4111111111111111"},{"card":"5500000000000004"}]}')
    masked = mask_http(raw, frozenset(), {"items.*.card": "OBFUSCATE"})
    assert json.loads(base64.b64decode(masked).decode().split("\r\n\r\n", 1)[1]) == {"items": [{"card": "****1111"}, {"card": "****0004"}]}


def test_payload_without_a_match_is_the_same_string() -> None:
    raw = b64(RESPONSE)
    assert mask_http(raw, frozenset({b"authorization"}), {"a.b": "STRING"}) is raw
    assert mask_http("", frozenset({b"authorization"}), {}) == ""


def test_a_decoded_payload_is_masked_as_text() -> None:
    assert "Authorization: *****" in mask_http(REQUEST, frozenset({b"authorization"}), {})


MASK = {
    "fields": {"ip_address": "IP", "api_key": "OBFUSCATE", "alias": "EMAIL", "oauth_id": "STRING"},
    "request_headers": ["Authorization"],
    "response_headers": ["Set-Cookie", "X-API-Key"],
    "request_body": {"user.email": "EMAIL"},
}


def record():  # type: ignore[no-untyped-def]
    return make_record(
        ip_address="192.168.1.98",
        api_key="5e9d9544a1dcd60001d0ed20abcd",
        alias="john.doe@gmail.com",
        oauth_id="client-7",
        tags=["key-5e9d9544a1dcd60001d0ed20abcd", "web"],
        raw_request=b64(REQUEST),
        raw_response=b64(RESPONSE),
    )


def test_record_fields_are_masked_on_a_copy_only() -> None:
    original = record()
    out = compile_mask(Mask.model_validate(MASK))([original])[0]  # type: ignore[misc]
    assert (out.ip_address, out.api_key, out.alias, out.oauth_id) == ("192.168.***.98", "****abcd", "*****@gmail.com", "*****")
    assert out.tags == ["key-****abcd", "web"]  # the gateway's key tag would repeat the key
    req = base64.b64decode(out.raw_request).decode()
    resp = base64.b64decode(out.raw_response).decode()
    assert "Bearer" not in req and "john.doe" not in req and "*****@gmail.com" in req
    assert "sid=xyz" not in resp and "k1" not in resp
    # The shared record, which other pumps receive, is untouched.
    assert original == record()
    assert original.ip_address == "192.168.1.98" and original.tags == ["key-5e9d9544a1dcd60001d0ed20abcd", "web"]


def test_unchanged_records_are_not_copied() -> None:
    r = make_record(ip_address="", api_key="", alias="", oauth_id="", tags=None)
    assert compile_mask(Mask.model_validate({"fields": {"ip_address": "IPV4"}}))([r])[0] is r  # type: ignore[misc]


def test_only_the_masked_pump_sees_masked_values() -> None:
    masked = PumpConfig(type="csv", mask=MASK)
    plain = PumpConfig(type="csv")
    config = Config(pumps={"masked": masked, "plain": plain})
    batch = [record()]
    assert build_view(masked, config)(batch)[0].ip_address == "192.168.***.98"
    assert build_view(plain, config)(batch)[0].ip_address == "192.168.1.98"


def test_masking_runs_before_raw_decoding_and_truncation() -> None:
    pump = PumpConfig(type="csv", mask=MASK, raw_request_decoded=True)
    out = build_view(pump, Config(pumps={"x": pump}))([record()])[0]
    assert out.raw_request.startswith("POST /login HTTP/1.1\r\n") and "Authorization: *****" in out.raw_request


def test_aggregates_of_a_masked_view_hold_masked_keys() -> None:
    pump = PumpConfig(type="sql_aggregate", mask={"fields": {"api_key": "OBFUSCATE", "oauth_id": "STRING"}})
    view = build_view(pump, Config(pumps={"x": pump}))
    batch = [record(), make_record(api_key="ffffffff00001111", oauth_id="c2", tags=None)]
    agg = next(iter(aggregate_records(view(batch)).values()))
    assert sorted(agg.apikeys) == ["****1111", "****abcd"]
    assert sorted(agg.oauthids) == ["*****"]


def test_pump_validate_names_wrong_mask_keys(tmp_path: Path) -> None:
    pump = {"type": "csv", "meta": {"csv_dir": str(tmp_path)}, "mask": {"fields": {"ip_adress": "IPV4", "response_code": "STRING"}}}
    path = tmp_path / "pump.yaml"
    path.write_text(yaml.safe_dump({"pumps": {"csv": pump}}))
    with pytest.raises(ConfigError) as err:
        load(path, environ={})
    assert "pumps.csv.mask.fields.ip_adress: not a text field of the record" in str(err.value)
    assert "pumps.csv.mask.fields.response_code: not a text field" in str(err.value)
    pump["mask"] = {"fields": {"ip_address": "IPV5"}}
    path.write_text(yaml.safe_dump({"pumps": {"csv": pump}}))
    with pytest.raises(ConfigError) as err:
        load(path, environ={})
    assert "pumps.csv.mask.fields" in str(err.value) and "unknown format 'IPV5'" in str(err.value)


def test_bodies_that_cannot_be_parsed_are_left_as_they_are() -> None:
    for body in ("[" * 100_000 + "]" * 100_000, "{not json", "plain text"):
        raw = b64("HTTP/1.1 200 OK\r\n\r\n" + body)
        assert mask_http(raw, frozenset(), {"a": "STRING"}) is raw
