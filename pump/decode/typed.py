"""The msgpack hot path: msgspec decodes a gateway payload into typed structs in C, generated
from :data:`pump.schema.FIELDS`, and one generated function copies them into a :class:`Record`.

msgspec is stricter than Go's decoder in a few places (``nil`` for a string, a float for an
integer, ``bin`` for a string, invalid UTF-8, the timestamp extension), and its error messages are
not ours. So this path only ever *accepts*: whatever msgspec (or a check after it) refuses goes
through the strict decoder of :mod:`pump.decode.msgpack`, which decides — a record exactly as it
would have decoded it, or the exact dead-letter reason. What the structs accept is a subset of
what the strict decoder accepts, and decodes to the same values:

* integers are bounded to Go's int64 (``Meta(le=INT64_MAX)``), times to ``[seconds in years
  1..9999, nanoseconds 0..999999999]``, as the strict decoder checks them;
* nested Go structs (``Geo.Country``, ``Network``…) may be ``nil`` (zeros, as Go reads it), a
  ``Geo`` may be ``nil`` or an empty map;
* ``GraphQLStats``/``MCPStats`` are structs too, kept as the strict decoder's Go-keyed dicts; an
  error entry with other keys than ``Message``/``Path`` (``message``…) takes the strict path;
* a payload with none of ``TimeStamp``, ``Method``, ``APIID`` may not be a record at all: the
  strict decoder says whether it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import msgspec
import xxhash

from pump import schema
from pump.gotime import GO_ZERO_UNIX, MAX_UNIX
from pump.record import Record

INT64_MAX = (1 << 63) - 1

_Int = Annotated[int, msgspec.Meta(le=INT64_MAX)]
_Time = tuple[Annotated[int, msgspec.Meta(ge=GO_ZERO_UNIX, le=MAX_UNIX)], Annotated[int, msgspec.Meta(ge=0, le=999_999_999)]]
#: What a payload without the time decodes to; the same object every time (an identity test
#: tells "absent" from "present").
ZERO_TIME: tuple[int, int] = (GO_ZERO_UNIX, 0)

_TYPES: dict[str, Any] = {
    schema.STRING: str,
    schema.INT: _Int,
    schema.INT64: _Int,
    schema.UINT: _Int,
    schema.MONTH: _Int,
    schema.FLOAT: float,
    schema.BOOL: bool,
    schema.TIME: _Time,
    schema.TAGS: list[str] | None,
    schema.NAMES: dict[str, str] | None,
}


class GraphError(msgspec.Struct, gc=False, forbid_unknown_fields=True):
    """An entry of ``GraphQLStats.Errors`` with Go's names; any other key (``message``…): the
    strict decoder's reading applies."""

    Message: str = ""
    Path: list[str | Annotated[int, msgspec.Meta(le=INT64_MAX)]] | None = None


class GraphQLStats(msgspec.Struct, gc=False):
    Variables: str = ""
    RootFields: list[str] | None = None
    Types: dict[str, list[str] | None] | None = None
    Errors: list[GraphError] | None = None
    OperationType: _Int = 0
    HasErrors: bool = False
    IsGraphQL: bool = False


class MCPStats(msgspec.Struct, gc=False):
    IsMCP: bool = False
    JSONRPCMethod: str = ""
    PrimitiveType: str = ""
    PrimitiveName: str = ""


_TYPES[schema.GRAPHQL] = GraphQLStats | None
_TYPES[schema.MCP] = MCPStats | None

#: The record keeps the stats as Go-keyed dicts (the strict decoder's shape, key order included).
_ERRORS = "None if v.Errors is None else [{'Message': e.Message, 'Path': e.Path} for e in v.Errors]"
_STATS = {
    schema.GRAPHQL: schema.nested_literal((f.go, _ERRORS if f.go == "Errors" else f"v.{f.go}") for f in schema.GRAPHQL_FIELDS),
    schema.MCP: schema.nested_literal((f.go, f"v.{f.go}") for f in schema.MCP_FIELDS),
}


def _tree() -> dict[str, Any]:
    """Go paths as a tree: ``{"Geo": {"City": {"Names": Field}}, "Method": Field, ...}``."""
    tree: dict[str, Any] = {}
    for f in schema.FIELDS:
        node = tree
        *parents, leaf = f.go.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = f
    return tree


def _struct(name: str, node: dict[str, Any]) -> type[msgspec.Struct]:
    """A msgspec Struct for one Go struct; nested structs are ``X | None`` (nil reads as zeros)."""
    fields: list[tuple[str, Any, Any]] = []
    for key, sub in node.items():
        if isinstance(sub, dict):
            fields.append((key, _struct(f"{name}_{key}", sub) | None, None))
        elif sub.type == schema.TIME:
            fields.append((key, _TYPES[sub.type], ZERO_TIME))
        else:
            fields.append((key, _TYPES[sub.type], schema.ZERO[sub.type]))
    # gc=False: the structs hold no cycles and live for one copy; tracking them costs time.
    return msgspec.defstruct(name, fields, gc=False, forbid_unknown_fields=False)


RecordStruct = _struct("GoAnalyticsRecord", _tree())


def _copy_lines(node: dict[str, Any], var: str, depth: int) -> list[str]:
    """Lines copying the struct in ``var`` into ``r``; a nil nested struct gives zeros."""
    lines: list[str] = []
    for key, sub in node.items():
        if isinstance(sub, dict):
            inner = f"s{depth}"
            lines.append(f"{inner} = {var}.{key}")
            lines.append(f"if {inner} is None:")
            lines += [f"    r.{f.attr} = {schema.ZERO[f.type]!r}" for f in _leaves(sub)]
            lines.append("else:")
            lines += ["    " + x for x in _copy_lines(sub, inner, depth + 1)]
        elif sub.type == schema.TIME:
            lines.append(f"t = {var}.{key}")
            lines.append(f"r.{sub.attr}_ns = t[0] * 1_000_000_000 + t[1]")
        elif sub.type in (schema.GRAPHQL, schema.MCP):
            lines.append(f"v = {var}.{key}")
            lines.append(f"r.{sub.attr} = None if v is None else {' '.join(_STATS[sub.type].split())}")
        else:
            lines.append(f"r.{sub.attr} = {var}.{key}")
    return lines


def _leaves(node: dict[str, Any]) -> list[schema.Field]:
    out: list[schema.Field] = []
    for sub in node.values():
        out += _leaves(sub) if isinstance(sub, dict) else [sub]
    return out


def _source() -> str:
    body = [
        "try:",
        "    s = _decode(raw)",
        "except Exception:",
        "    return _strict(raw)",
        # None of the three keys that tell a record from any other map: the strict decoder decides.
        "if s.TimeStamp is _ZERO_TIME and not s.Method and not s.APIID:",
        "    return _strict(raw)",
        "r = _new(Record)",
        "try:",
        *("    " + x for x in _copy_lines(_tree(), "s", 1)),
        "except Exception:",
        "    return _strict(raw)",
        "r.tz = r._ts = r._exp = None",
        "r.record_id = _hash(raw)",
        "return r",
    ]
    return "def decode_record(raw):\n" + "".join(f"    {line}\n" for line in body)


def build(strict: Callable[[bytes], Record]) -> Callable[[bytes], Record]:
    """The fast decoder, falling back to ``strict`` for anything it does not accept as is."""
    fn: Callable[[bytes], Record] = schema.compile_function(
        "decode_record",
        _source(),
        {
            "_decode": msgspec.msgpack.Decoder(RecordStruct).decode,
            "_strict": strict,
            "_new": Record.__new__,
            "Record": Record,
            "_hash": xxhash.xxh3_128_hexdigest,
            "_ZERO_TIME": ZERO_TIME,
        },
    )
    return fn
