"""The ``http`` pump's bodies, byte for byte: our formats, and the collector templates as Tyk's Go
pumps write them (Splunk HEC, Moesif, Logz.io). Pure code, no server."""

from __future__ import annotations

import base64
import json

import pytest

from pump.sinks.http.client import DATA, OK, RETRY, classify, retry_after_seconds
from pump.sinks.http.config import Meta
from pump.sinks.http.encode import JSON_ARRAY, NDJSON, Options, chunks, go_escape
from pump.sinks.http.formats import encoder
from pump.sinks.http.moesif import MoesifOptions, b64decode_raw, user_from_authorization
from pump.sinks.http.templates import filter_tags, obfuscate
from tests.helpers import make_record


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


RAW_REQUEST = (
    b"POST /users/42?verbose=1 HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Basic "
    + base64.b64encode(b"alice:secret-pw")
    + b'\r\nX-Company: acme\r\nContent-Type: application/json\r\n\r\n{"z":1.0,"a":"<b>&","password":"hunter2","nested":{"password":"x"}}'
)
RAW_RESPONSE = b"HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nX-Request-Id: r-1\r\n\r\ncreated"


def test_splunk_event_is_tyks_default_event_with_sorted_keys_and_unix_time() -> None:
    r = make_record(raw_request=b64(b"GET / HTTP/1.1\r\n\r\n"), raw_response="")
    body = encoder("splunk", Options())(r)
    expected = (
        '{"time":1705326312,"event":{"api_id":"727dad853a8a45f64ab981154d1ffdad","api_key":"00000000",'
        '"api_name":"Users API","api_version":"Non Versioned","ip_address":"172.18.0.1","method":"GET",'
        '"oauth_id":"","org_id":"5e9d9544a1dcd60001d0ed20","path":"/users/42",'
        '"raw_request":"R0VUIC8gSFRUUC8xLjENCg0K","raw_response":"","request_time":12,"response_code":200,'
        '"time_stamp":"2024-01-15T13:45:12.123456Z"}}'
    )
    assert body.decode() == expected


def test_splunk_selected_fields_obfuscation_tag_filter_and_go_escaping() -> None:
    r = make_record(
        api_key="abcdef123456", tags=["key-1", "org-acme", "org-beta", "plan-gold"], alias="<admin>&co",
        geo_location_latitude=51.5, geo_city_names={"fr": "Londres", "en": "London"},
    )  # fmt: skip
    opts = Options(
        fields=("tags", "api_key", "alias", "geo", "latency", "track_path"),
        obfuscate_api_keys=True,
        obfuscate_api_keys_length=4,
        ignore_tag_prefix_list=("org-",),
    )
    assert encoder("splunk", opts)(r).decode() == (
        '{"time":1705326312,"event":{"alias":"\\u003cadmin\\u003e\\u0026co","api_key":"****3456",'
        '"geo":{"country":{"iso_code":""},"city":{"geoname_id":0,"names":{"en":"London","fr":"Londres"}},'
        '"location":{"latitude":51.5,"longitude":0,"time_zone":""}},'
        '"latency":{"total":12,"upstream":10,"gateway":2},"tags":["key-1","plan-gold"],"track_path":false}}'
    )


def test_obfuscation_and_tag_filter_follow_tyk() -> None:
    assert obfuscate("abcdef", 0) == "****"
    assert obfuscate("abcdef", 2) == "****ef"
    assert obfuscate("abc", 3) == "abc"  # not longer than the kept part: left alone, as in Tyk
    assert filter_tags(["a-1", "a-2", "b"], ("a-",)) == ["b"]  # Tyk's loop would keep "a-2"
    assert filter_tags(None, ("a-",)) is None


def test_logzio_document_is_tyks_fourteen_fields_sorted() -> None:
    doc = encoder("logzio", Options())(make_record())
    assert doc.decode() == (
        '{"@timestamp":"2024-01-15T13:45:12.123456Z","api_id":"727dad853a8a45f64ab981154d1ffdad","api_key":"00000000",'
        '"api_name":"Users API","api_version":"Non Versioned","http_method":"GET","ip_address":"172.18.0.1",'
        '"oauth_id":"","org_id":"5e9d9544a1dcd60001d0ed20","raw_request":"","raw_response":"","request_time_ms":12,'
        '"request_uri":"/users/42","response_code":200}'
    )


def test_moesif_event_matches_tyks_shape() -> None:
    r = make_record(method="POST", raw_request=b64(RAW_REQUEST), raw_response=b64(RAW_RESPONSE), tags=["t1"])
    opts = MoesifOptions(request_body_masks=("password",), request_header_masks=("X-Company",), company_id_header="x-request-id")
    event = json.loads(encoder("moesif", Options(moesif=opts))(r))
    masked_body = b'{"a":"\\u003cb\\u003e\\u0026","nested":{"password":"*****"},"password":"*****","z":1}'
    assert event == {
        "request": {
            "time": "2024-01-15T13:45:12.123456Z",
            "uri": "/users/42?verbose=1",
            "verb": "POST",
            "headers": {
                "authorization": "Basic " + b64(b"alice:secret-pw"),
                "content-type": "application/json",
                "host": "api.example.com",
                "x-company": "*****",
            },
            "api_version": "Non Versioned",
            "ip_address": "172.18.0.1",
            "body": b64(masked_body),
            "transfer_encoding": "base64",
        },
        "response": {
            "time": "2024-01-15T13:45:12.135456Z",  # + request_time (12 ms)
            "status": 200,
            "headers": {"content-type": "text/plain", "x-request-id": "r-1"},
            "body": b64(b"created"),
            "transfer_encoding": "base64",
        },
        "session_token": "00000000",
        "user_id": "alice",  # from the Basic credentials, as Tyk reads them
        "company_id": "r-1",  # the response header
        "metadata": {"tyk": {"api_name": "Users API", "tags": ["t1"]}},
        "direction": "Incoming",
        "weight": 1,
    }
    # key order is Go's struct order
    assert list(event) == ["request", "response", "session_token", "user_id", "company_id", "metadata", "direction", "weight"]


def test_moesif_user_id_sources() -> None:
    claims = base64.urlsafe_b64encode(json.dumps({"sub": "u-9", "n": 1}).encode()).decode().rstrip("=")
    assert user_from_authorization(f"Bearer h.{claims}.sig", "sub") == "u-9"
    assert user_from_authorization(f"h.{claims}.sig", "sub") == "u-9"
    assert user_from_authorization(f"Bearer h.{claims}.sig", "n") == ""  # not a string claim
    assert user_from_authorization("Bearer opaque", "sub") == ""
    alias = make_record(alias="the-alias", raw_request=b64(RAW_REQUEST))
    assert json.loads(encoder("moesif", Options())(alias))["user_id"] == "the-alias"
    empty = make_record(raw_request="", raw_response="")
    event = json.loads(encoder("moesif", Options())(empty))
    assert event["request"]["headers"] == {} and event["request"]["body"] is None and event["user_id"] == ""
    assert event["request"]["uri"] == "/users/42"  # no request line: the record's path


def test_moesif_raw_that_is_not_base64_is_refused_and_a_truncated_one_decoded() -> None:
    with pytest.raises(ValueError, match="not base64"):
        b64decode_raw("GET / HTTP/1.1")
    assert b64decode_raw(b64(b"GET /abc HTTP/1.1")[:-3]) == b"GET /abc HTTP/1"  # cut by max_record_size: whole quanta kept


def test_ndjson_and_json_array_framing_and_fields() -> None:
    records = [make_record(path=f"/p/{i}") for i in range(3)]
    enc = encoder("ndjson", Options(fields=("path", "response_code")))
    items = [enc(r) for r in records]
    assert (
        NDJSON.body(items)
        == b'{"path":"/p/0","response_code":200}\n{"path":"/p/1","response_code":200}\n{"path":"/p/2","response_code":200}\n'
    )
    assert JSON_ARRAY.body(items[:2]) == b'[{"path":"/p/0","response_code":200},{"path":"/p/1","response_code":200}]'
    full = json.loads(encoder("json-array", Options())(records[0]))
    assert full == records[0].to_json()


@pytest.mark.parametrize("fmt", ["ndjson", "json-array", "splunk", "logzio", "moesif"])
def test_text_that_was_not_utf8_is_sent_as_replacement_characters(fmt: str) -> None:
    """The decoder keeps bytes that were not UTF-8 as surrogates; orjson refuses them, and every
    format used to refuse (dead-letter) such a record where Tyk's Go pumps send U+FFFD."""
    r = make_record(path="/caf\udce9", user_agent="a\udcff", api_name="n\udcfe", raw_request=b64(b"GET / HTTP/1.1\r\n\r\n"))
    doc = json.loads(encoder(fmt, Options())(r))
    assert "\ufffd" in json.dumps(doc, ensure_ascii=False)


def test_chunks_by_records_and_bytes_including_framing() -> None:
    items = [(i, b"x" * 10) for i in range(10)]
    assert [len(c) for c in chunks(items, NDJSON, 4, 0)] == [4, 4, 2]
    # ndjson: 11 bytes per record; 35 bytes hold three
    assert [len(c) for c in chunks(items, NDJSON, 0, 35)] == [3, 3, 3, 1]
    # json-array: "[" + 10 + ("," + 10)*n + "]": 3 records = 34 bytes, 4 = 45
    assert [len(c) for c in chunks(items, JSON_ARRAY, 0, 44)] == [3, 3, 3, 1]
    assert [len(c) for c in chunks([(0, b"y" * 100), (1, b"z")], NDJSON, 0, 10)] == [1, 1]  # too big: alone


def test_go_escape() -> None:
    assert go_escape('{"a":"<>&\u2028"}'.encode()) == b'{"a":"\\u003c\\u003e\\u0026\\u2028"}'


def _meta(**kw: object) -> Meta:
    return Meta.model_validate({"url": "http://h/x", **kw})


@pytest.mark.parametrize(
    ("status", "kind"),
    [(200, OK), (204, OK), (400, DATA), (413, DATA), (422, DATA), (401, RETRY), (403, RETRY), (404, RETRY),
     (408, RETRY), (429, RETRY), (500, RETRY), (503, RETRY), (302, RETRY), (409, DATA)],
)  # fmt: skip
def test_status_outcomes(status: int, kind: int) -> None:
    assert classify(status, None, "", _meta()).kind == kind


def test_done_and_retry_codes_are_configurable() -> None:
    meta = _meta(done_codes=[200, 409], retry_codes=[429])
    assert classify(409, None, "", meta).kind == OK
    assert classify(202, None, "", meta).kind == DATA  # not a done code when done_codes is set
    assert classify(403, None, "", meta).kind == DATA
    assert classify(502, None, "", meta).kind == RETRY


def test_retry_after_seconds_and_dates() -> None:
    assert retry_after_seconds("3", 300) == 3.0
    assert retry_after_seconds("9999", 300) == 300
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:10 GMT", 300, now=1445412480) == 10.0
    assert retry_after_seconds("soon", 300) is None
    assert retry_after_seconds(None, 300) is None
    outcome = classify(429, "2", "slow down", _meta())
    assert (outcome.kind, outcome.retry_after, outcome.reason) == (RETRY, 2.0, "HTTP 429: slow down")
