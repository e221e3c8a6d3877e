"""Per-pump filters and field rules (tyk-pump.md §5.1, §7.2 cases 16 and 17)."""

from __future__ import annotations

import pytest

from pump.config.model import Config, PumpConfig
from pump.gotime import ZERO_TIME
from pump.transforms import build_view
from tests.helpers import make_record

CASE_16 = [
    ("api111", 400, "321"),
    ("api123", 200, "123"),
    ("api123", 500, "123"),
    ("api123", 200, "321"),
    ("api111", 404, "321"),
    ("api111", 500, "321"),
]


def view(config: Config | None = None, **pump: object):  # type: ignore[no-untyped-def]
    return build_view(PumpConfig(type="csv", **pump), config or Config(pumps={"x": PumpConfig(type="csv")}))


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"skip_response_codes": [200]}, 4),
        ({}, 6),
        ({"response_codes": [200]}, 2),
        ({"api_ids": ["api123"], "org_ids": ["123"], "response_codes": [200]}, 1),
        ({"api_ids": ["api111"], "org_ids": ["123"], "response_codes": [200]}, 0),
    ],
)
def test_filters_case_16(filters: dict[str, list[object]], expected: int) -> None:
    records = [make_record(api_id=a, response_code=c, org_id=o) for a, c, o in CASE_16]
    assert len(view(filters=filters)(records)) == expected


def test_deny_wins_over_allow() -> None:
    records = [make_record(api_id="a"), make_record(api_id="b")]
    assert [r.api_id for r in view(filters={"api_ids": ["a", "b"], "skip_api_ids": ["a"]})(records)] == ["b"]


def test_no_rules_means_the_same_list_object() -> None:
    records = [make_record()]
    assert view()(records) is records


@pytest.mark.parametrize("level", ["global", "pump"])
def test_max_record_size_case_17(level: str) -> None:
    rec = make_record(raw_request="MTIzNDU2Nzg5MA==", raw_response="YWJjZGVmZ2hpams=")
    for size, want_req in ((0, rec.raw_request), (5, rec.raw_request[:5]), (len(rec.raw_request) + 1, rec.raw_request)):
        cfg = Config(max_record_size=size if level == "global" else 0, pumps={"x": PumpConfig(type="csv")})
        out = view(cfg, max_record_size=size if level == "pump" else 0)([rec])[0]
        assert out.raw_request == want_req
        assert len(out.raw_response) == (5 if size == 5 else len(rec.raw_response))
    assert rec.raw_request == "MTIzNDU2Nzg5MA=="  # the shared record is never modified


def test_truncation_never_splits_a_character() -> None:
    out = view(max_record_size=2)([make_record(raw_request="héllo")])[0]
    assert out.raw_request == "h"  # the 2-byte "é" would be cut in half
    out = view(max_record_size=4)([make_record(raw_request="héllo")])[0]
    assert out.raw_request == "hél"


@pytest.mark.parametrize("level", ["global", "pump"])
def test_omit_detailed_recording_works_at_both_levels(level: str) -> None:
    """Tyk ignores the global switch (§10); here both levels work."""
    cfg = Config(omit_detailed_recording=level == "global", pumps={"x": PumpConfig(type="csv")})
    out = view(cfg, omit_detailed_recording=level == "pump")([make_record(raw_request="abc", raw_response="def")])[0]
    assert (out.raw_request, out.raw_response) == ("", "")


def test_ignore_fields_blank_top_level_json_fields() -> None:
    rec = make_record(api_key="secret", ip_address="1.2.3.4", geo_country_iso_code="GB", latency_total=5)
    out = view(ignore_fields=["api_key", "ip_address", "geo", "latency", "expireAt"])([rec])[0]
    assert (out.api_key, out.ip_address, out.geo_country_iso_code, out.latency_total) == ("", "", "", 0)
    assert out.expire_at == ZERO_TIME
    assert rec.api_key == "secret"


def test_raw_decoded_switches() -> None:
    rec = make_record(raw_request="R0VUIC8=", raw_response="not base64!")
    out = view(raw_request_decoded=True, raw_response_decoded=True)([rec])[0]
    assert (out.raw_request, out.raw_response) == ("GET /", "not base64!")
