"""Decoder behaviour beyond the golden bytes: Go's zero values, both time encodings, hostile
input that must be rejected with a reason (never crash), and protobuf schema drift."""

from __future__ import annotations

import random

import msgpack
import pytest

from pump.decode import msgpack as mp
from pump.decode import protobuf as pb
from pump.decode.uptime import decode_uptime, go_fields
from pump.errors import DecodeError
from pump.gotime import GO_ZERO_UNIX
from pump.record import UptimeRecord
from tests.helpers import T0, make_record


def test_reference_time_bytes() -> None:
    """tyk-pump.md §1.4: 2024-01-15T13:45:12.123456789Z → 92 ce 65 a5 36 e8 ce 07 5b cd 15."""
    rec = make_record(timestamp_ns=1705326312123456789)
    raw = mp.encode_record(rec)
    assert bytes.fromhex("a954696d655374616d7092ce65a536e8ce075bcd15") in raw


def test_missing_keys_take_go_zero_values_and_unknown_keys_are_ignored() -> None:
    raw = mp.encode_map({"Method": "GET", "APIID": "a", "FutureField": {"x": 1}, "TimeStamp": [1, 0]})
    rec = mp.decode_record(raw)
    assert (rec.method, rec.api_id, rec.response_code, rec.tags, rec.geo_city_names) == ("GET", "a", 0, None, None)
    assert rec.expire_at_ns == GO_ZERO_UNIX * 1_000_000_000
    assert rec.expire_at.year == 1


def test_nil_fields_read_as_zero() -> None:
    raw = mp.encode_map({"Method": None, "ResponseCode": None, "Tags": None, "Geo": None, "TimeStamp": None, "TrackPath": None})
    rec = mp.decode_record(raw)
    assert (rec.method, rec.response_code, rec.tags, rec.track_path) == ("", 0, None, False)


def test_msgpack_timestamp_extension_is_accepted() -> None:
    """Newer msgpack libraries write times as the timestamp extension (type -1)."""
    ts = msgpack.Timestamp(1705326312, 123456789)
    raw = msgpack.packb({"Method": "GET", "TimeStamp": ts, "APIID": "x"}, datetime=False)
    assert mp.decode_record(raw).timestamp_ns == 1705326312123456789


def test_record_id_is_stable_and_content_based() -> None:
    a = mp.encode_record(make_record())
    b = mp.encode_record(make_record(path="/other"))
    assert mp.decode_record(a).record_id == mp.decode_record(a).record_id
    assert mp.decode_record(a).record_id != mp.decode_record(b).record_id
    assert len(mp.decode_record(a).record_id) == 32


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "not msgpack"),
        (b"\xc1", "not msgpack"),
        (msgpack.packb([1, 2, 3]), "not a map"),
        (msgpack.packb({"Foo": 1}), "none of TimeStamp, Method, APIID"),
        (msgpack.packb({"Method": 5, "APIID": "a"}), "field Method: expected a string"),
        (msgpack.packb({"Method": "GET", "ResponseCode": "200"}), "field ResponseCode: expected an integer"),
        (msgpack.packb({"Method": "GET", "TimeStamp": [1, 2, 3]}), "field TimeStamp"),
        (msgpack.packb({"Method": "GET", "TimeStamp": [10**15, 0]}), "out of range"),
        (msgpack.packb({"Method": "GET", "Tags": "a,b"}), "field Tags"),
        (msgpack.packb({"Method": "GET", "Geo": {"City": {"Names": ["x"]}}}), "Geo.City.Names"),
        (b'{"method": "GET"}', "not"),
    ],
)
def test_bad_payloads_get_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        mp.decode_record(payload)


def test_fuzzed_payloads_only_ever_raise_decode_error() -> None:
    """Mutated real records: every outcome is a record or a DecodeError, nothing else."""
    rng = random.Random(1234)
    good = mp.encode_record(make_record(tags=["a", "b"], geo_city_names={"en": "X"}))
    outcomes = {"ok": 0, "bad": 0}
    for _ in range(3000):
        data = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            op = rng.random()
            pos = rng.randrange(len(data))
            if op < 0.5:
                data[pos] = rng.randrange(256)
            elif op < 0.75:
                del data[pos : pos + rng.randint(1, 20)]
            else:
                data[pos:pos] = rng.randbytes(rng.randint(1, 20))
        for decoder in (mp.decode_record, pb.decode_record):
            try:
                decoder(bytes(data))
                outcomes["ok"] += 1
            except DecodeError:
                outcomes["bad"] += 1
    assert outcomes["bad"] > 1000


def test_protobuf_round_trip_keeps_every_field_it_carries() -> None:
    rec = make_record(response_code=-1, network_bytes_in=5, tags=["t1"], geo_city_names={"en": "London"},
                      geo_location_latitude=-12.5, graphql_stats={"IsGraphQL": True, "OperationType": 2, "RootFields": ["a"],
                      "Types": {"T": ["f"]}, "Variables": "{}", "HasErrors": True, "Errors": [{"Message": "boom", "Path": None}]},
                      mcp_stats={"IsMCP": True, "JSONRPCMethod": "tools/call", "PrimitiveType": "tool", "PrimitiveName": "x"},
                      original_path="/o", listen_path="/l/")  # fmt: skip
    back = pb.decode_record(pb.encode_record(rec))
    for name in ("response_code", "network_bytes_in", "tags", "geo_city_names", "geo_location_latitude", "timestamp_ns",
                 "original_path", "listen_path", "mcp_stats"):  # fmt: skip
        assert getattr(back, name) == getattr(rec, name), name
    assert back.graphql_stats["Errors"] == [{"Message": "boom", "Path": None}]
    assert back.latency_gateway == 0  # not in the protobuf schema


def test_protobuf_old_layout_without_mcp_stats() -> None:
    """Older gateways: field 33 = OriginalPath (a string), 34 = ListenPath."""
    values = {"Method": "GET", "OriginalPath": "/orig", "ListenPath": "/listen/"}
    raw = pb._enc(values, pb.OLD_RECORD)
    back = pb.decode_record(raw)
    assert (back.original_path, back.listen_path, back.mcp_stats) == ("/orig", "/listen/", None)


def test_uptime_round_trip() -> None:
    rec = UptimeRecord(url="http://up/", request_time=12, response_code=200, day=15, month=1, year=2024, hour=13, minute=45,
                       timestamp=T0, expire_at=T0, api_id="a", org_id="o")  # fmt: skip
    back = decode_uptime(mp.encode_map(go_fields(rec)))
    assert (back.url, back.response_code, back.minute, back.timestamp_ns) == ("http://up/", 200, 45, rec.timestamp_ns)
    with pytest.raises(DecodeError):
        decode_uptime(msgpack.packb({"nothing": 1}))
