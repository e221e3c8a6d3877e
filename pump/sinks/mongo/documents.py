"""Records as Tyk's Mongo documents: lower-cased Go field names, Go's BSON integer widths, and a
deterministic ``_id`` (:func:`object_id`), which is what makes a redelivered raw batch a no-op
instead of a duplicate; plus Tyk's size estimates and the oversize-document rule."""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from bson import Int64, ObjectId

from pump import schema
from pump.record import Record, UptimeRecord
from pump.sinks.mongo.config import KIB
from pump.text import valid_utf8

#: What Tyk writes instead of the raw payloads of a record over ``max_document_size_bytes``
#: (base64 of "Document too large, not writing raw request and raw response!").
TOO_LARGE_RAW_RESPONSE = "RG9jdW1lbnQgdG9vIGxhcmdlLCBub3Qgd3JpdGluZyByYXcgcmVxdWVzdCBhbmQgcmF3IHJlc3BvbnNlIQ=="


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a batch's documents are built.

    Building thousands of small dicts triggers a collection every few hundred allocations, and
    each one walks every live record and document: measured, that is three quarters of the cost
    of :func:`to_document` over a 5000-record batch (≈17–25 µs/record instead of ≈4.5). The
    documents hold no reference cycles, so nothing is lost by collecting once afterwards. Only
    for code with no ``await`` inside: nothing else runs meanwhile.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def object_id(record_id: str, timestamp_ns: int) -> ObjectId:
    """A deterministic ObjectId for a record: 4 bytes of its timestamp, 8 of its id.

    Tyk's documents have ObjectId ``_id``s (the Dashboard's log browser looks records up by them),
    so the record id is folded into one rather than stored as a string: the timestamp keeps the
    natural ObjectId order, the 64 bits of the record hash keep it unique, and the same record
    always gets the same ``_id`` — a second insert is a duplicate-key no-op.
    """
    seconds = (timestamp_ns // 1_000_000_000) & 0xFFFFFFFF
    tail = record_id[:16] if len(record_id) >= 16 else hashlib.blake2b(record_id.encode(), digest_size=8).hexdigest()
    try:
        return ObjectId(f"{seconds:08x}{tail}")
    except Exception:  # not hex: hash whatever the id is
        return ObjectId(f"{seconds:08x}{hashlib.blake2b(record_id.encode(), digest_size=8).hexdigest()}")


def _record_key(r: Record) -> str:
    """The record id, or for a record built in-process without one, a hash of its content."""
    return r.record_id or _content_key(r)


def _content_key(r: Record | UptimeRecord) -> str:
    return hashlib.blake2b(repr(r.to_json()).encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


_INF = float("inf")


def coordinate(value: float) -> float:
    """A latitude or longitude as stored in Mongo: NaN and ±infinity become 0.0, Go's zero value
    ("no GeoIP data"), and so does −0.0. Tyk's Go driver writes a NaN as it is; MongoDB keeps it,
    but FerretDB refuses NaN, infinities and −0.0 (and drops the connection on NaN), which would
    stall the pump on one record forever. A coordinate that is not a number is no location."""
    return value if -_INF < value < _INF and value != 0.0 else 0.0


def _bson_value(f: schema.Field) -> str:
    a = f"r.{f.attr}"
    return {
        schema.INT64: f"Int64({a})",
        schema.FLOAT: f"coordinate(float({a}))",
        schema.BOOL: f"bool({a})",
        schema.TAGS: f"list({a}) if {a} else []",
        schema.NAMES: f"{a} or {{}}",
    }.get(f.type, a)


_ENTRIES = [("_id", "object_id(_record_key(r), r.timestamp_ns)"), *((f.bson or "", _bson_value(f)) for f in schema.columns("bson"))]
_TO_DOCUMENT = f"def to_document(r):\n    return {schema.nested_literal(_ENTRIES)}\n"

#: A record as Tyk's Mongo pumps store it (tyk-pump.md §2.1, "Mongo" column; the ``bson``
#: column of :data:`pump.schema.FIELDS`).
#:
#: Lower-cased Go field names (``rawpath``, ``geo.country.isocode``, ``network.closedconnection``,
#: ``expireAt``), Go ``int64`` fields as BSON int64 and ``int`` fields as int32 (what Tyk's
#: mgo-compatible codec writes), nil tags and city names as empty array/document (the codec's
#: nil-as-empty rule), and no ``api_schema``, GraphQL/MCP stats or collection name (``bson:"-"``).
#: A coordinate that is NaN or infinite is stored as 0 (:func:`coordinate`).
to_document: Callable[[Record], dict[str, Any]] = schema.compile_function(
    "to_document", _TO_DOCUMENT, {"Int64": Int64, "object_id": object_id, "_record_key": _record_key, "coordinate": coordinate}
)


def uptime_document(u: UptimeRecord) -> dict[str, Any]:
    """A host-checker result as Tyk's uptime pump stores it (``UptimeReportData``)."""
    return {
        "_id": object_id(u.record_id or _content_key(u), u.timestamp_ns),
        "url": u.url,
        "requesttime": Int64(u.request_time),
        "responsecode": u.response_code,
        "tcperror": bool(u.tcp_error),
        "servererror": bool(u.server_error),
        "day": u.day,
        "month": u.month,
        "year": u.year,
        "hour": u.hour,
        "minute": u.minute,
        "timestamp": u.timestamp,
        "expireAt": u.expire_at,
        "apiid": u.api_id,
        "orgid": u.org_id,
    }


def skipped_by_raw_pumps(r: Record) -> bool:
    """Network-only (``-1``) and MCP records never become raw documents (tyk-pump.md §4)."""
    return r.response_code == -1 or r.is_mcp


def estimated_size(r: Record) -> int:
    """Tyk's size estimate of a record's document: the raw payloads plus 1 KiB of the rest."""
    return len(r.raw_request) + len(r.raw_response) + KIB


def strip_raw_payloads(doc: dict[str, Any]) -> None:
    """What Tyk's ``mongo`` pump does to an oversize document: drop the raw request, replace the
    raw response by a note."""
    doc["rawrequest"] = ""
    doc["rawresponse"] = TOO_LARGE_RAW_RESPONSE


def chunk_by_size(sizes: Sequence[int], limit: int) -> list[range]:
    """Consecutive runs of items whose summed estimate stays within ``limit`` (Tyk's
    ``AccumulateSet``, without its bug of dropping the last run); an item larger than the limit
    gets a run of its own."""
    runs: list[range] = []
    start = 0
    total = 0
    for i, size in enumerate(sizes):
        if i > start and total + size > limit:
            runs.append(range(start, i))
            start, total = i, 0
        total += size
    if start < len(sizes):
        runs.append(range(start, len(sizes)))
    return runs


#: Every string (keys too) made valid UTF-8: BSON refuses the decoder's surrogate escapes.
sanitize = valid_utf8
