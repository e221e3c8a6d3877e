"""Tyk's protobuf wire format (the ``_protobuf`` lists), both ways, without generated code.

The schema is ``normalproto.AnalyticsRecord`` (tyk-pump.md §1.4). It is small and fixed, so a
table-driven reader of the protobuf wire format (varints, length-delimited fields, fixed64
doubles) is shorter than vendoring generated classes and keeps the package free of a protoc step.

Schema drift: older gateways numbered ``OriginalPath`` 33 and ``ListenPath`` 34; current ones put
``MCPStats`` (a message) at 33 and move the paths to 34 and 35. Field 33 is read as ``MCPStats``
when it parses as that message and as the old ``OriginalPath`` string otherwise, and the meaning
of 34 follows.

Unlike Tyk, which drops ``Geo.City.Names`` when it reads protobuf, the names are kept. Timestamps
are placed in the zone named by field 30, as Tyk does; an unknown zone name falls back to the
pump's zone instead of zeroing the times.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pump import schema
from pump.decode.msgpack import record_id
from pump.errors import DecodeError
from pump.gotime import GO_ZERO_UNIX, LOCAL_ZONE
from pump.record import Record

_new = Record.__new__

# field kinds
STR, I64, I32, U32, BOOL, DBL, MSG, REP_STR, MAP_SS, MAP_SM = range(10)

Schema = dict[int, tuple[str, int, Any]]

TIMESTAMP: Schema = {1: ("seconds", I64, None), 2: ("nanos", I32, None)}
LATENCY: Schema = {1: ("Total", I64, None), 2: ("Upstream", I64, None)}
COUNTRY: Schema = {1: ("ISOCode", STR, None)}
CITY: Schema = {1: ("Names", MAP_SS, None), 2: ("GeoNameID", U32, None)}
LOCATION: Schema = {1: ("Latitude", DBL, None), 2: ("Longitude", DBL, None), 3: ("TimeZone", STR, None)}
GEO: Schema = {1: ("Country", MSG, COUNTRY), 2: ("City", MSG, CITY), 3: ("Location", MSG, LOCATION)}
NETWORK: Schema = {
    1: ("OpenConnections", I64, None),
    2: ("ClosedConnections", I64, None),
    3: ("BytesIn", I64, None),
    4: ("BytesOut", I64, None),
}
REPEATED_FIELDS: Schema = {1: ("fields", REP_STR, None)}
GRAPHQL: Schema = {
    1: ("IsGraphQL", BOOL, None),
    2: ("Types", MAP_SM, REPEATED_FIELDS),
    3: ("OperationType", I32, None),
    4: ("Variables", STR, None),
    5: ("RootFields", REP_STR, None),
    6: ("HasError", BOOL, None),
    7: ("GraphErrors", REP_STR, None),
}
MCP: Schema = {
    1: ("IsMCP", BOOL, None),
    2: ("JSONRPCMethod", STR, None),
    3: ("PrimitiveType", STR, None),
    4: ("PrimitiveName", STR, None),
}
RECORD: Schema = {
    1: ("Host", STR, None),
    2: ("Method", STR, None),
    3: ("Path", STR, None),
    4: ("RawPath", STR, None),
    5: ("ContentLength", I64, None),
    6: ("UserAgent", STR, None),
    7: ("Day", I32, None),
    8: ("Month", I32, None),
    9: ("Year", I32, None),
    10: ("Hour", I32, None),
    11: ("ResponseCode", I32, None),
    12: ("APIKey", STR, None),
    13: ("TimeStamp", MSG, TIMESTAMP),
    14: ("APIVersion", STR, None),
    15: ("APIName", STR, None),
    16: ("APIID", STR, None),
    17: ("OrgID", STR, None),
    18: ("RequestTime", I64, None),
    19: ("Latency", MSG, LATENCY),
    20: ("RawRequest", STR, None),
    21: ("RawResponse", STR, None),
    22: ("IPAddress", STR, None),
    23: ("Geo", MSG, GEO),
    24: ("Network", MSG, NETWORK),
    25: ("Tags", REP_STR, None),
    26: ("Alias", STR, None),
    27: ("TrackPath", BOOL, None),
    28: ("ExpireAt", MSG, TIMESTAMP),
    29: ("OauthID", STR, None),
    30: ("TimeZone", STR, None),
    31: ("ApiSchema", STR, None),
    32: ("GraphQLStats", MSG, GRAPHQL),
    33: ("MCPStats", MSG, MCP),
    34: ("OriginalPath", STR, None),
    35: ("ListenPath", STR, None),
}

_DOUBLE = struct.Struct("<d")


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise DecodeError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise DecodeError("varint longer than 10 bytes")


def _signed(v: int, bits: int) -> int:
    v &= (1 << 64) - 1
    if v >= 1 << 63:
        v -= 1 << 64
    if bits == 32:
        v = (v + (1 << 31)) % (1 << 32) - (1 << 31)
    return v


def _utf8(b: bytes) -> str:
    return b.decode("utf-8", "replace")


def parse(buf: bytes, schema: Schema) -> dict[str, Any]:
    """Parse one message into a dict keyed by field name; unknown fields are skipped."""
    out: dict[str, Any] = {}
    pos = 0
    end = len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if number == 0:
            raise DecodeError("field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            if pos + 8 > end:
                raise DecodeError("truncated fixed64")
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > end:
                raise DecodeError("truncated length-delimited field")
            value, pos = buf[pos : pos + length], pos + length
        elif wire == 5:
            if pos + 4 > end:
                raise DecodeError("truncated fixed32")
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise DecodeError(f"unsupported wire type {wire}")
        spec = schema.get(number)
        if spec is None:
            continue
        name, kind, sub = spec
        _store(out, name, kind, sub, wire, value)
    return out


def _expect(wire: int, want: int, name: str) -> None:
    if wire != want:
        raise DecodeError(f"field {name}: wire type {wire}, expected {want}")


def _store(out: dict[str, Any], name: str, kind: int, sub: Any, wire: int, value: Any) -> None:
    if kind == STR:
        _expect(wire, 2, name)
        out[name] = _utf8(value)
    elif kind in (I64, I32, U32, BOOL):
        _expect(wire, 0, name)
        if kind == I64:
            out[name] = _signed(value, 64)
        elif kind == I32:
            out[name] = _signed(value, 32)
        elif kind == U32:
            out[name] = value & 0xFFFFFFFF
        else:
            out[name] = bool(value)
    elif kind == DBL:
        _expect(wire, 1, name)
        out[name] = _DOUBLE.unpack(value)[0]
    elif kind == MSG:
        _expect(wire, 2, name)
        out[name] = parse(value, sub)
    elif kind == REP_STR:
        _expect(wire, 2, name)
        out.setdefault(name, []).append(_utf8(value))
    elif kind in (MAP_SS, MAP_SM):
        _expect(wire, 2, name)
        entry = parse(value, {1: ("k", STR, None), 2: ("v", STR if kind == MAP_SS else MSG, sub)})
        out.setdefault(name, {})[entry.get("k", "")] = entry.get("v", "" if kind == MAP_SS else {})


def _zone(name: str) -> tzinfo:
    if not name or name == "Local":
        return LOCAL_ZONE
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return LOCAL_ZONE


def _ts(m: dict[str, Any] | None) -> int:
    """protobuf Timestamp → (datetime, unix ns); an absent timestamp reads as Go's zero time,
    the same "not set" marker the msgpack path produces."""
    if not m:
        return GO_ZERO_UNIX * 1_000_000_000
    sec = m.get("seconds", 0)
    nsec = m.get("nanos", 0)
    if not 0 <= nsec < 1_000_000_000 or not GO_ZERO_UNIX <= sec <= 253402300799:
        raise DecodeError(f"timestamp out of range: ({sec}, {nsec})")
    return sec * 1_000_000_000 + nsec  # type: ignore[no-any-return]


#: The layout before MCPStats existed: 33 = OriginalPath, 34 = ListenPath (module docstring).
OLD_RECORD: Schema = {**{n: spec for n, spec in RECORD.items() if n < 33}, 33: ("OriginalPath", STR, None), 34: ("ListenPath", STR, None)}


#: GraphQL stats on the wire → as a record keeps them (msgpack's shape): ``Types`` maps a type
#: to its field list, errors are bare messages.
_GQL_FROM_WIRE: dict[str, Callable[[Any], Any]] = {
    "Types": lambda v: {k: x.get("fields", []) for k, x in v.items()},
    "Errors": lambda v: [{"Message": e, "Path": None} for e in v],
}


def _graphql(gql: dict[str, Any] | None) -> dict[str, Any] | None:
    if gql is None:
        return None
    out: dict[str, Any] = {}
    for f in schema.GRAPHQL_FIELDS:
        if f.proto in gql:
            convert = _GQL_FROM_WIRE.get(f.go)
            out[f.go] = convert(gql[f.proto]) if convert else gql[f.proto]
        else:
            out[f.go] = f.zero
    return out


def _get(var: str, key: str, zero: Any) -> str:
    return f"{var}.get({key!r})" if zero is None else f"{var}.get({key!r}, {zero!r})"


def _decode_source() -> str:
    """``decode_fields(raw, m)``: a parsed message → a Record, from the ``proto`` column of
    :data:`pump.schema.FIELDS` (fields the wire does not carry take Go's zero value)."""
    lines = ["r = _new(Record)", "r.tz = _zone(m.get('TimeZone', ''))", "r._ts = r._exp = None"]
    structs: list[str] = []
    for f in schema.FIELDS:
        if f.proto is None:
            lines.append(f"r.{f.attr} = {schema.ZERO[f.type]!r}")
            continue
        *parents, leaf = f.proto.split(".")
        var = "m"
        for i in range(len(parents)):
            path = ".".join(parents[: i + 1])
            child = "m_" + path.replace(".", "_")
            if path not in structs:
                structs.append(path)
                lines.append(f"{child} = {_get(var, parents[i], {})}")
            var = child
        if f.type == schema.TIME:
            lines.append(f"r.{f.attr}_ns = _ts({_get(var, leaf, None)})")
        elif f.type == schema.GRAPHQL:
            lines.append(f"r.{f.attr} = _graphql({_get(var, leaf, None)})")
        else:
            lines.append(f"r.{f.attr} = {_get(var, leaf, schema.ZERO[f.type])}")
    lines += ["r.record_id = record_id(raw)", "return r"]
    return "def decode_fields(raw, m):\n" + "".join(f"    {line}\n" for line in lines)


_decode_fields: Callable[[bytes, dict[str, Any]], Record] = schema.compile_function(
    "decode_fields",
    _decode_source(),
    {"_new": _new, "Record": Record, "_zone": _zone, "_ts": _ts, "_graphql": _graphql, "record_id": record_id},
)


def decode_record(raw: bytes) -> Record:
    """Decode one ``_protobuf`` payload into a :class:`Record`."""
    try:
        m = parse(raw, RECORD)
    except DecodeError as exc:
        try:
            m = parse(raw, OLD_RECORD)
        except DecodeError:
            raise DecodeError(f"not a protobuf analytics record: {exc}") from exc
    if not m:
        raise DecodeError("not a protobuf analytics record: no known fields")
    return _decode_fields(raw, m)


# --- encoding ----------------------------------------------------------------------------------


def _enc_varint(v: int) -> bytes:
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(number: int, wire: int) -> bytes:
    return _enc_varint(number << 3 | wire)


def _ld(number: int, payload: bytes) -> bytes:
    return _key(number, 2) + _enc_varint(len(payload)) + payload


def _enc(values: dict[str, Any], schema: Schema) -> bytes:
    """Encode a dict keyed by field names, in field-number order as Go's marshaller writes it;
    proto3 zero values are omitted."""
    parts: list[bytes] = []
    for num in sorted(schema):
        name, kind, sub = schema[num]
        value = values.get(name)
        if value is not None:
            parts.append(_WRITERS[kind](num, value, sub))
    return b"".join(parts)


def _w_str(num: int, v: str, _: Any) -> bytes:
    return _ld(num, v.encode("utf-8", "surrogateescape")) if v else b""


def _w_int(num: int, v: int, _: Any) -> bytes:
    return _key(num, 0) + _enc_varint(v) if v else b""


def _w_bool(num: int, v: bool, _: Any) -> bytes:
    return _key(num, 0) + b"\x01" if v else b""


def _w_dbl(num: int, v: float, _: Any) -> bytes:
    return _key(num, 1) + _DOUBLE.pack(v) if v else b""


def _w_msg(num: int, v: dict[str, Any], sub: Schema) -> bytes:
    return _ld(num, _enc(v, sub))


def _w_rep(num: int, v: list[str], _: Any) -> bytes:
    return b"".join(_ld(num, s.encode("utf-8", "surrogateescape")) for s in v)


def _w_map_ss(num: int, v: dict[str, str], _: Any) -> bytes:
    return b"".join(_ld(num, _w_str(1, k, None) + _w_str(2, x, None)) for k, x in v.items())


def _w_map_sm(num: int, v: dict[str, Any], sub: Schema) -> bytes:
    return b"".join(_ld(num, _w_str(1, k, None) + _ld(2, _enc(x, sub))) for k, x in v.items())


_WRITERS: dict[int, Callable[[int, Any, Any], bytes]] = {
    STR: _w_str,
    I64: _w_int,
    I32: _w_int,
    U32: _w_int,
    BOOL: _w_bool,
    DBL: _w_dbl,
    MSG: _w_msg,
    REP_STR: _w_rep,
    MAP_SS: _w_map_ss,
    MAP_SM: _w_map_sm,
}


def _ts_values(ns: int) -> dict[str, int]:
    sec, nsec = divmod(ns, 1_000_000_000)
    return {"seconds": sec, "nanos": nsec}


#: GraphQL stats as a record keeps them → on the wire (the inverse of ``_GQL_FROM_WIRE``).
_GQL_TO_WIRE: dict[str, Callable[[Any], Any]] = {
    "Types": lambda v: {k: {"fields": x} for k, x in (v or {}).items()},
    "Errors": lambda v: [e.get("Message", "") for e in (v or [])],
    "RootFields": lambda v: v or [],
}


def _graphql_wire(gql: dict[str, Any] | None) -> dict[str, Any]:
    g = gql or {}
    out: dict[str, Any] = {}
    for f in schema.GRAPHQL_FIELDS:
        convert = _GQL_TO_WIRE.get(f.go)
        out[f.proto] = convert(g.get(f.go)) if convert else g.get(f.go, f.zero)
    return out


def _wire_value(f: schema.Field) -> str:
    a = f"r.{f.attr}"
    return {
        schema.TIME: f"_ts_values({a}_ns)",
        schema.NAMES: f"{a} or {{}}",
        schema.TAGS: f"{a} or []",
        schema.GRAPHQL: f"_graphql_wire({a})",
        schema.MCP: f"dict({a} or {{}})",
    }.get(f.type, a)


_WIRE_VALUES = f"""\
def wire_values(r, zone_name):
    return {schema.nested_literal([*((f.proto, _wire_value(f)) for f in schema.columns("proto") if f.proto), ("TimeZone", "zone_name")])}
"""
_wire_values: Callable[[Record, str], dict[str, Any]] = schema.compile_function(
    "wire_values", _WIRE_VALUES, {"_ts_values": _ts_values, "_graphql_wire": _graphql_wire}
)


def encode_record(r: Record, zone_name: str = "UTC") -> bytes:
    """Encode a record as a gateway configured with ``serializer_type: protobuf`` would."""
    return _enc(_wire_values(r, zone_name), RECORD)
