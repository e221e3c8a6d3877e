"""The stdout pump's output shape and Tyk's payload flattening (§7.2 case 20)."""

from __future__ import annotations

import io
import json

import pytest

from pump.sinks.base import SinkBatch
from pump.sinks.stdout import Meta, StdoutSink, compact_json, transform_http_payload
from tests.helpers import make_record


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            'POST / HTTP/1.1\r\nHost: example.com\r\n\r\n{\t"key": "value",\n\t"num": 123}',
            'POST / HTTP/1.1 Host: example.com {"key":"value","num":123}',
        ),
        ("POST / HTTP/1.1\r\nHost: example.com\r\n\r\nHello\r\nWorld\t!", "POST / HTTP/1.1 Host: example.com  Hello World!"),
        ("", ""),
        ("R0VUIC8=", "R0VUIC8="),
    ],
)
def test_transform_http_payload_case_20(raw: str, expected: str) -> None:
    assert transform_http_payload(raw) == expected


def test_compact_keeps_tokens_and_string_whitespace() -> None:
    assert compact_json('{ "a b" : 1.0e2 , "c": "\\" x" }') == '{"a b":1.0e2,"c":"\\" x"}'


async def test_json_lines_are_tyk_logrus_shaped() -> None:
    out = io.StringIO()
    sink = StdoutSink("out", Meta(format="json"), stream=out)
    await sink.write(SinkBatch("b1", [make_record(), make_record(path="/two")]))
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    doc = json.loads(lines[0])
    assert set(doc) == {"level", "msg", "time", "tyk-analytics-record"}
    assert (doc["level"], doc["msg"]) == ("info", "")
    assert doc["tyk-analytics-record"]["path"] == "/users/42"
    assert doc["tyk-analytics-record"]["timestamp"] == "2024-01-15T13:45:12.123456Z"


async def test_text_lines() -> None:
    out = io.StringIO()
    await StdoutSink("out", Meta(format="text"), stream=out).write(SinkBatch("b1", [make_record()]))
    assert "GET api.example.com/users/42 200" in out.getvalue()


async def test_json_line_of_text_that_was_not_utf8_is_printed_with_replacement_characters() -> None:
    """Bytes that were not UTF-8 reach the record as surrogates; orjson refuses them, and the
    record used to be refused (and dead-lettered) where Tyk prints it with U+FFFD."""
    out = io.StringIO()
    sink = StdoutSink("out", Meta(format="json"), stream=out)
    await sink.write(SinkBatch("b1", [make_record(path="/caf\udce9", tags=["t\udcff"], geo_city_names={"en\udcff": "x"}), make_record()]))
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    doc = json.loads(lines[0])["tyk-analytics-record"]
    assert doc["path"] == "/caf\ufffd" and doc["tags"] == ["t\ufffd"]
    assert doc["geo"]["city"]["names"] == {"en\ufffd": "x"}
