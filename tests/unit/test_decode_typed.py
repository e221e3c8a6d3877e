"""The msgspec hot path (pump.decode.typed) against the strict decoder it falls back to.

``decode_record`` must give exactly what ``decode_record_strict`` gives for every payload — the
same record, value for value and type for type, or the same dead-letter reason — and must not
fall back for what gateways send, or it would be no faster."""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from pump.decode import msgpack as mp
from pump.decode import typed
from pump.delivery.fanout import decode_all
from pump.demo import Traffic
from pump.errors import DecodeError
from pump.record import Record
from tests.helpers import make_record, pack
from tests.unit.test_fuzz_hostile import BASE, payloads


def outcome(decode: Any, raw: bytes) -> str:
    """Everything a decode yields, as text: repr keeps types apart (1 vs 1.0 vs True, b'' vs '')
    and NaN equal to itself."""
    try:
        r = decode(raw)
    except DecodeError as exc:
        return f"DecodeError: {exc}"
    return repr([(name, getattr(r, name)) for name in Record.__slots__])


@settings(max_examples=1500, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
@given(payload=payloads())
def test_fast_decoder_agrees_with_the_strict_one_on_hostile_payloads(payload: bytes) -> None:
    assert outcome(mp.decode_record, payload) == outcome(mp.decode_record_strict, payload)


EDGE_CASES: list[dict[str, Any]] = [
    {**BASE, "Geo": None},
    {**BASE, "Geo": {}},
    {**BASE, "Geo": {"Country": None, "City": None, "Location": None}},
    {**BASE, "Network": None, "Latency": {}},
    {**BASE, "ContentLength": (1 << 63) - 1},
    {**BASE, "ContentLength": 1 << 63},
    {**BASE, "Geo": {**BASE["Geo"], "City": {"GeoNameID": 1 << 63, "Names": None}}},
    {**BASE, "TimeStamp": [253402300799, 999_999_999]},
    {**BASE, "TimeStamp": [253402300800, 0]},
    {**BASE, "TimeStamp": [0, 1_000_000_000]},
    {**BASE, "TimeStamp": None},
    {**BASE, "Method": None},
    {**BASE, "TrackPath": None},
    {**BASE, "RequestTime": 12.0},
    {**BASE, "Geo": {**BASE["Geo"], "Location": {"Latitude": 1, "Longitude": True, "TimeZone": ""}}},
    {**BASE, "Tags": [b"bin-tag", "t"]},
    {**BASE, "GraphQLStats": {**BASE["GraphQLStats"], "OperationType": "query"}},
    {**BASE, "MCPStats": {"IsMCP": 1}},
    {"Host": "only-a-host"},
    {"Method": ""},
    {"APIID": "a"},
    {"TimeStamp": [0, 0]},
    {},
]


@pytest.mark.parametrize("fields", EDGE_CASES, ids=range(len(EDGE_CASES)))
def test_fast_decoder_agrees_on_edge_cases(fields: dict[str, Any]) -> None:
    raw = pack(fields)
    assert outcome(mp.decode_record, raw) == outcome(mp.decode_record_strict, raw)


def test_gateway_payloads_never_take_the_slow_path() -> None:
    def refuse(raw: bytes) -> Record:
        raise AssertionError("fell back to the strict decoder")

    fast = typed.build(refuse)
    traffic = Traffic(seed=3, span_seconds=3600, detailed_share=0.5)
    payloads_ = [mp.encode_record(r) for r in traffic.stream(2000)]
    payloads_.append(mp.encode_record(make_record(graphql_stats=dict(BASE["GraphQLStats"]))))
    for raw in payloads_:
        assert outcome(fast, raw) == outcome(mp.decode_record_strict, raw)


def test_a_batch_with_a_bad_payload_keeps_order_reasons_and_the_collector_state() -> None:
    good = [mp.encode_record(make_record(path=f"/p/{i}")) for i in range(5)]
    raws = [*good[:2], b"\xc1", *good[2:], pack({"Method": 1})]
    assert gc.isenabled()
    records, kept, bad = decode_all("msgpack", raws)
    assert gc.isenabled()
    assert [r.path for r in records] == [f"/p/{i}" for i in range(5)]
    assert kept == good
    assert [raw for raw, _ in bad] == [b"\xc1", pack({"Method": 1})]
    assert bad[1][1] == "field Method: expected a string, got int"
    gc.disable()
    try:
        decode_all("msgpack", good)
        assert not gc.isenabled()  # a caller's choice is left alone
    finally:
        gc.enable()


def test_payloads_of_tyks_own_serializer_take_the_fast_path() -> None:
    """tests/fixtures/tyk: bytes written by Tyk's Go code. Only invalid UTF-8 (which the strict
    decoder replaces with U+FFFD) needs the strict path."""
    fell_back: list[str] = []
    fixtures = json.loads((Path(__file__).resolve().parent.parent / "fixtures" / "tyk" / "records.json").read_text())
    for case in fixtures["cases"]:
        raw = bytes.fromhex(case["msgpack_hex"])

        def strict(raw: bytes, name: str = case["name"]) -> Record:
            fell_back.append(name)
            return mp.decode_record_strict(raw)

        assert outcome(typed.build(strict), raw) == outcome(mp.decode_record_strict, raw)
    assert fell_back == ["invalid_utf8_path"]
