"""Tyk's msgpack wire format, both ways.

The gateway encodes its Go ``AnalyticsRecord`` with ``gopkg.in/vmihailenco/msgpack.v2``
(tyk-pump.md §1.4): a map keyed by Go field names in struct order, ``time.Time`` as a two-element
array ``[unix_seconds, nanoseconds]``, nil slices and maps as ``nil``, integers in their smallest
encoding (unsigned codes for non-negative values), ``float64`` always as ``0xcb``. Decoding is
lenient where Go's is (unknown keys ignored, missing keys take the zero value, ``nil`` reads as
zero) and strict where Go's would fail (a string where a number belongs), so that a payload Tyk
could not decode is dead-lettered here too instead of poisoning a sink later.

Newer msgpack libraries write times as the timestamp extension (type −1); both forms are read.
Strings that are not valid UTF-8 get U+FFFD, as Go's ``json.Marshal`` would print them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack
import xxhash

from pump import schema
from pump.decode import typed
from pump.errors import DecodeError
from pump.gotime import GO_ZERO_UNIX
from pump.record import Record

_new = Record.__new__


def record_id(raw: bytes) -> str:
    """A stable id for an encoded record: the same bytes always give the same id.

    XXH3-128 is a frozen, documented hash (32 hex characters) and costs a fraction of a
    microsecond per record; it is an identity for deduplication, not a security measure."""
    return xxhash.xxh3_128_hexdigest(raw)


def _str(v: Any, field: str) -> str:
    if v.__class__ is str:
        return v
    if v is None:
        return ""
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    raise DecodeError(f"field {field}: expected a string, got {type(v).__name__}")


def _int(v: Any, field: str) -> int:
    if v.__class__ is int:
        return v
    if v is None:
        return 0
    if isinstance(v, float) and v.is_integer():
        if -(2.0**63) <= v < 2.0**63:  # Go's int64; a larger int is refused in decode_record
            return int(v)
        raise DecodeError(f"field {field}: {v!r} does not fit Go's int64")
    raise DecodeError(f"field {field}: expected an integer, got {type(v).__name__}")


def _float(v: Any, field: str) -> float:
    if v.__class__ is float:
        return v
    if v is None:
        return 0.0
    if isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    raise DecodeError(f"field {field}: expected a number, got {type(v).__name__}")


def _bool(v: Any, field: str) -> bool:
    if v is True or v is False:
        return v
    if v is None:
        return False
    raise DecodeError(f"field {field}: expected a boolean, got {type(v).__name__}")


def _map(v: Any, field: str) -> dict[str, Any]:
    if v.__class__ is dict:
        return v
    if v is None:
        return {}
    raise DecodeError(f"field {field}: expected a map, got {type(v).__name__}")


_ZERO_NS = GO_ZERO_UNIX * 1_000_000_000


def _time(v: Any, field: str) -> int:
    """Go time → unix nanoseconds (the datetime is built lazily by :class:`Record`)."""
    if v.__class__ is list and len(v) == 2:
        sec, nsec = v
        if sec.__class__ is int and nsec.__class__ is int and 0 <= nsec < 1_000_000_000:
            if _MIN_SEC <= sec <= _MAX_SEC:
                return sec * 1_000_000_000 + nsec
            raise DecodeError(f"field {field}: time out of range ({sec}, {nsec})")
    if v is None:
        return _ZERO_NS
    if isinstance(v, msgpack.Timestamp):
        if _MIN_SEC <= v.seconds <= _MAX_SEC:
            return v.to_unix_nano()  # type: ignore[no-any-return]
        raise DecodeError(f"field {field}: time out of range")
    raise DecodeError(f"field {field}: expected a time as [seconds, nanoseconds], got {v!r:.60}")


#: Years 1..9999, what Python's datetime can hold (Go's zero time is year 1).
_MIN_SEC = GO_ZERO_UNIX
_MAX_SEC = 253402300799


def _tags(v: Any) -> list[str] | None:
    if v.__class__ is list:
        for t in v:
            if t.__class__ is not str:
                return [_str(t, "Tags") for t in v]
        return v
    if v is None:
        return None
    raise DecodeError(f"field Tags: expected a list of strings, got {type(v).__name__}")


def _names(v: Any) -> dict[str, str] | None:
    if v.__class__ is dict:
        for k, x in v.items():
            if k.__class__ is not str or x.__class__ is not str:
                return {_str(k, "Geo.City.Names"): _str(x, "Geo.City.Names") for k, x in v.items()}
        return v
    if v is None:
        return None
    raise DecodeError(f"field Geo.City.Names: expected a map, got {type(v).__name__}")


#: Go's ``int``/``int64`` fields hold at most this; msgpack can carry up to 2**64 - 1 (a uint64).
INT64_MAX = (1 << 63) - 1

#: The integer fields of a record: Go names and attributes, checked at once against :data:`INT64_MAX`.
_INT_FIELDS = {f.go: f.attr for f in schema.FIELDS if f.type in schema.INTEGERS}


def _int_overflow(r: Record) -> DecodeError:
    """An integer beyond int64 (msgpack carries up to uint64): Go's decoder would wrap it negative
    and no sink holds it (BIGINT, BSON int64), so the payload is refused here, not by a sink later.
    ``Geo.City.GeoNameID`` is a Go ``uint`` but is held to the same bound for the same reason."""
    for go_name, attr in _INT_FIELDS.items():
        if getattr(r, attr) > INT64_MAX:
            return DecodeError(f"field {go_name}: integer {getattr(r, attr)} does not fit Go's int64")
    return DecodeError("an integer does not fit Go's int64")  # pragma: no cover


def _str_list(v: Any, field: str) -> list[str] | None:
    if v is None:
        return None
    if v.__class__ is not list:
        raise DecodeError(f"field {field}: expected a list of strings, got {type(v).__name__}")
    return [t if t.__class__ is str else _str(t, field) for t in v]


def _path_items(v: Any) -> list[Any] | None:
    """``GraphError.Path`` (Go ``[]interface{}``): GraphQL paths are field names and indexes."""
    if v is None:
        return None
    if v.__class__ is not list:
        raise DecodeError(f"field GraphQLStats.Errors.Path: expected a list, got {type(v).__name__}")
    for x in v:
        if not (x.__class__ is str or (x.__class__ is int and -INT64_MAX - 1 <= x <= INT64_MAX)):
            raise DecodeError(f"field GraphQLStats.Errors.Path: expected field names and indexes, got {x!r:.60}")
    return v


_GQL_ZERO = {f.go: f.zero for f in schema.GRAPHQL_FIELDS}
_MCP_ZERO = {f.go: f.zero for f in schema.MCP_FIELDS}


def _graphql(v: Any) -> dict[str, Any] | None:
    """Go's ``GraphQLStats`` struct, typed field by field as Go's decoder would (unknown keys are
    ignored), so a sink printing it never meets bytes, NaN or a timestamp where Go has a string."""
    if v is None:
        return None
    if v == _GQL_ZERO:  # what every REST record carries: one C-level comparison, the types made Go's
        return dict(_GQL_ZERO)
    m = _map(v, "GraphQLStats")
    types = _map(m.get("Types"), "GraphQLStats.Types") if m.get("Types") is not None else None
    errors = m.get("Errors")
    if errors is not None and errors.__class__ is not list:
        raise DecodeError(f"field GraphQLStats.Errors: expected a list, got {type(errors).__name__}")
    out_errors = None
    if errors is not None:
        out_errors = []
        for e in errors:
            e = _map(e, "GraphQLStats.Errors")
            message = e.get("Message", e.get("message"))
            path = e.get("Path", e.get("path"))
            out_errors.append({"Message": _str(message, "GraphQLStats.Errors.Message"), "Path": _path_items(path)})
    operation = _int(m.get("OperationType"), "GraphQLStats.OperationType")
    if not -INT64_MAX - 1 <= operation <= INT64_MAX:
        raise DecodeError(f"field GraphQLStats.OperationType: integer {operation} does not fit Go's int")
    return {
        "Variables": _str(m.get("Variables"), "GraphQLStats.Variables"),
        "RootFields": _str_list(m.get("RootFields"), "GraphQLStats.RootFields"),
        "Types": None if types is None else {_str(k, "GraphQLStats.Types"): _str_list(x, "GraphQLStats.Types") for k, x in types.items()},
        "Errors": out_errors,
        "OperationType": operation,
        "HasErrors": _bool(m.get("HasErrors"), "GraphQLStats.HasErrors"),
        "IsGraphQL": _bool(m.get("IsGraphQL"), "GraphQLStats.IsGraphQL"),
    }


def _mcp(v: Any) -> dict[str, Any] | None:
    """Go's ``MCPStats`` struct, typed field by field (see :func:`_graphql`)."""
    if v is None:
        return None
    if v == _MCP_ZERO:
        return dict(_MCP_ZERO)
    m = _map(v, "MCPStats")
    return {
        "IsMCP": _bool(m.get("IsMCP"), "MCPStats.IsMCP"),
        "JSONRPCMethod": _str(m.get("JSONRPCMethod"), "MCPStats.JSONRPCMethod"),
        "PrimitiveType": _str(m.get("PrimitiveType"), "MCPStats.PrimitiveType"),
        "PrimitiveName": _str(m.get("PrimitiveName"), "MCPStats.PrimitiveName"),
    }


def _unpack(raw: bytes) -> Any:
    try:
        return msgpack.unpackb(raw, raw=False, unicode_errors="replace", strict_map_key=False, timestamp=0)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise DecodeError(f"not msgpack: {exc}") from exc
    except Exception as exc:  # msgpack raises a few other types on hostile input (e.g. TypeError)
        raise DecodeError(f"not msgpack: {type(exc).__name__}: {exc}") from exc


#: Top-level structs a payload may leave out or send empty (gateways without GeoIP data): a
#: falsy value reads as all zeros. Other structs must be maps (or nil) when present.
_OPTIONAL_STRUCTS = frozenset(("Geo",))

_CHECKS = {
    schema.STRING: "_str",
    schema.INT: "_int",
    schema.INT64: "_int",
    schema.UINT: "_int",
    schema.MONTH: "_int",
    schema.FLOAT: "_float",
    schema.BOOL: "_bool",
}
_PY_TYPE = {"_str": "str", "_int": "int"}


def _top_level(f: schema.Field) -> list[str]:
    """Lines decoding a field at the top of the map. Strings and integers of the right type are
    checked inline (the common case); anything else goes through the checking function."""
    go = f.go
    if f.type == schema.TIME:
        return [f"r.{f.attr}_ns = _time(g({go!r}), {go!r})"]
    if f.type == schema.TAGS:
        return [f"r.{f.attr} = _tags(g({go!r}))"]
    if f.type in (schema.GRAPHQL, schema.MCP):
        return [f"r.{f.attr} = {'_graphql' if f.type == schema.GRAPHQL else '_mcp'}(g({go!r}))"]
    check = _CHECKS[f.type]
    if check in _PY_TYPE:
        return [f"v = g({go!r})", f"r.{f.attr} = v if v.__class__ is {_PY_TYPE[check]} else {check}(v, {go!r})"]
    return [f"r.{f.attr} = {check}(g({go!r}), {go!r})"]


def _var(path: str) -> str:
    return "m_" + path.replace(".", "_")


def _struct(name: str, fields: list[schema.Field]) -> list[str]:
    """Lines decoding the fields of one nested struct: every (sub)struct is checked to be a map
    first, then the leaves, each through its checking function."""
    maps: list[str] = []
    for f in fields:
        parts = f.go.split(".")[:-1]
        for i in range(1, len(parts) + 1):
            if ".".join(parts[:i]) not in maps:
                maps.append(".".join(parts[:i]))
    lines = [f"{_var(name)} = _map({_var(name)}, {name!r})" if name in _OPTIONAL_STRUCTS else f"{_var(name)} = _map(g({name!r}), {name!r})"]
    for path in maps[1:]:
        parent, _, leaf = path.rpartition(".")
        lines.append(f"{_var(path)} = _map({_var(parent)}.get({leaf!r}), {path!r})")
    for f in fields:
        parent, _, leaf = f.go.rpartition(".")
        getter = f"{_var(parent)}.get({leaf!r})"
        if f.type == schema.NAMES:
            lines.append(f"r.{f.attr} = _names({getter})")
        else:
            lines.append(f"r.{f.attr} = {_CHECKS[f.type]}({getter}, {f.go!r})")
    if name not in _OPTIONAL_STRUCTS:
        return lines
    zeros = [f"r.{f.attr} = {schema.ZERO[f.type]!r}" for f in fields]
    return [f"{_var(name)} = g({name!r})", f"if {_var(name)}:", *("    " + x for x in lines), "else:", *("    " + x for x in zeros)]


def _decode_source() -> str:
    body: list[str] = []
    done: set[str] = set()
    for f in schema.FIELDS:
        top = f.go.split(".")[0]
        if "." not in f.go:
            body += _top_level(f)
        elif top not in done:
            done.add(top)
            body += _struct(top, [x for x in schema.FIELDS if x.go.split(".")[0] == top])
    # Only msgpack's uint64 (0xcf) can carry more than int64: a C-speed scan before any check.
    ints = ", ".join(f"r.{f.attr}" for f in schema.FIELDS if f.type in schema.INTEGERS)
    body += [f"if b'\\xcf' in raw and max({ints}) > INT64_MAX:", "    raise _int_overflow(r)"]
    body += ["r.tz = r._ts = r._exp = None", "r.record_id = xxhash.xxh3_128_hexdigest(raw)", "return r"]
    return "def decode_fields(raw, m):\n    g = m.get\n    r = _new(Record)\n" + "".join(f"    {line}\n" for line in body)


#: The field-by-field decoding of a record map, generated from :data:`pump.schema.FIELDS`: the
#: common case (a field of the right type) is checked inline, since a function call per field
#: would cost more than the msgpack parse itself.
_decode_fields: Callable[[bytes, dict[Any, Any]], Record] = schema.compile_function(
    "decode_fields",
    _decode_source(),
    {"_new": _new, "Record": Record, "xxhash": xxhash, "_str": _str, "_int": _int, "_float": _float, "_bool": _bool, "_map": _map,
     "_time": _time, "_tags": _tags, "_names": _names, "_graphql": _graphql, "_mcp": _mcp, "INT64_MAX": INT64_MAX,
     "_int_overflow": _int_overflow},
)  # fmt: skip


def decode_record_strict(raw: bytes) -> Record:
    """Decode one gateway payload; raises :class:`DecodeError` with a reason a person can act on.

    The reference decoder: :func:`decode_record` (the hot path) hands it every payload it does
    not accept as is, so its reasons are the dead-letter reasons."""
    m = _unpack(raw)
    if m.__class__ is not dict:
        raise DecodeError(f"not an analytics record: top-level msgpack value is {type(m).__name__}, not a map")
    if "TimeStamp" not in m and "Method" not in m and "APIID" not in m:
        raise DecodeError("not an analytics record: none of TimeStamp, Method, APIID is present")
    return _decode_fields(raw, m)


#: Decode one gateway payload (msgspec's typed structs, :mod:`pump.decode.typed`), falling back to
#: :func:`decode_record_strict` for whatever they do not accept; raises :class:`DecodeError`.
decode_record: Callable[[bytes], Record] = typed.build(decode_record_strict)


# --- encoding (the demo, the benchmark and the tests write exactly what a gateway writes) -------


def _go_time(ns: int) -> list[int]:
    sec, nsec = divmod(ns, 1_000_000_000)
    return [sec, nsec]


def _go_value(f: schema.Field) -> str:
    a = f"r.{f.attr}"
    if f.type == schema.TIME:
        return f"_go_time({a}_ns)"
    if f.type == schema.FLOAT:
        return f"float({a})"
    if f.type in (schema.GRAPHQL, schema.MCP):
        sub = schema.GRAPHQL_FIELDS if f.type == schema.GRAPHQL else schema.MCP_FIELDS
        return schema.nested_literal((s.go, f"({a} or {{}}).get({s.go!r}{'' if s.zero is None else f', {s.zero!r}'})") for s in sub)
    return a


#: The record as the Go struct's msgpack map: Go names, struct order, Go zero values.
_GO_FIELDS = f"def go_fields(r):\n    return {schema.nested_literal((f.go, _go_value(f)) for f in schema.FIELDS)}\n"
go_fields: Callable[[Record], dict[str, Any]] = schema.compile_function("go_fields", _GO_FIELDS, {"_go_time": _go_time})


def encode_record(r: Record) -> bytes:
    """Encode a record byte-for-byte as the Go gateway does."""
    return msgpack.packb(go_fields(r), use_bin_type=True)  # type: ignore[no-any-return]


def encode_map(values: dict[str, Any]) -> bytes:
    """Encode an arbitrary Go-keyed map (used for uptime records and hostile test payloads)."""
    return msgpack.packb(values, use_bin_type=True)  # type: ignore[no-any-return]
