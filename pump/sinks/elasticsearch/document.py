"""What one record becomes in Elasticsearch: its index, its ``_id`` and its document. Pure code.

The document is Tyk's (tyk-pump.md §4, ``getMapping``): the same field names and values, so
dashboards and saved searches built on Tyk's ES pump keep working. ``extra_fields`` (on by
default) adds what Tyk leaves out but an index template can type usefully — latencies, host,
country, a ``geo_point`` — and the record's kind; Tyk's fields are never renamed or removed.

Index names use the **record's** date (in the record's zone, which is the pump's zone unless a
protobuf record names one), not the wall clock as Tyk does: a backlog drained after midnight, or a
redelivered batch, lands in the index of the day the request happened, so redelivery finds the
same ``_id`` in the same index and cannot duplicate.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from pump import schema
from pump.gotime import record_day, rfc3339_nano, time_parts
from pump.record import Record
from pump.sinks.elasticsearch.config import Meta
from pump.sinks.elasticsearch.tykid import go_string, tyk_document_id
from pump.transforms.eventkind import KINDS as EVENT_KINDS
from pump.transforms.eventkind import event_kind

#: Kinds of event for ``index_per_kind`` (after the webMethods destinations' per-event-type data).
REQUESTS, ERRORS, THROTTLED = "requests", "errors", "throttled"
KINDS = (REQUESTS, ERRORS, THROTTLED)


def kind_of(response_code: int) -> str:
    """``throttled`` for 429 (rate limit), ``errors`` for any other 4xx/5xx, else ``requests``.

    Tyk answers a quota breach with 403, which is an error like any other refusal; only 429 says
    "slow down". Network-only records (code −1) and 1xx–3xx are ordinary requests.
    """
    if response_code == 429:
        return THROTTLED
    if response_code >= 400:
        return ERRORS
    return REQUESTS


#: Go's RFC 3339 with nanoseconds (what Tyk's ``@timestamp`` is marshalled as).
timestamp_text = rfc3339_nano


def decode_raw(value: str) -> str:
    """Tyk's ``decode_base64``: the raw request/response as text. Invalid UTF-8 bytes become
    U+FFFD as Go's JSON encoder makes them; a value that is not valid base64 is kept as sent
    (Tyk would store whatever prefix decoded)."""
    if not value:
        return value
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return value
    return go_string(raw)


#: Tyk's document (``getMapping``): these fields in this order, named by the ``es`` column of
#: :data:`pump.schema.FIELDS`; with ``extended_stats`` the raw payloads (base64-decoded with
#: ``decode_base64``) and the user agent follow.
TYK_ORDER = (
    "timestamp",
    "method",
    "path",
    "raw_path",
    "response_code",
    "ip_address",
    "api_key",
    "api_version",
    "api_name",
    "api_id",
    "org_id",
    "oauth_id",
    "request_time",
    "alias",
    "content_length",
    "tags",
)
EXTENDED = ("raw_request", "raw_response", "user_agent")
_DECODED = ("raw_request", "raw_response")


def _tyk_document_source() -> str:
    names = {f.attr: f.es for f in schema.columns("es")}
    base = ", ".join(f"{names[a]!r}: stamp" if a == "timestamp" else f"{names[a]!r}: r.{a}" for a in TYK_ORDER)
    decoded = "".join(f"            doc[{names[a]!r}] = decode_raw(r.{a})\n" for a in _DECODED)
    plain = "".join(f"            doc[{names[a]!r}] = r.{a}\n" for a in _DECODED)
    rest = "".join(f"        doc[{names[a]!r}] = r.{a}\n" for a in EXTENDED if a not in _DECODED)
    return (
        f"def _tyk_document(r, stamp, extended, decode):\n    doc = {{{base}}}\n"
        f"    if extended:\n        if decode:\n{decoded}        else:\n{plain}{rest}    return doc\n"
    )


_tyk_document: Callable[[Record, str, bool, bool], dict[str, Any]] = schema.compile_function(
    "_tyk_document", _tyk_document_source(), {"decode_raw": decode_raw}
)


_EXTRAS = (
    ("event_kind", "kind_of(r.response_code)"),
    ("host", "r.host"),
    ("latency_total_ms", "r.latency_total"),
    ("latency_upstream_ms", "r.latency_upstream"),
    ("latency_gateway_ms", "r.latency_gateway"),
    ("geo_country_iso_code", "r.geo_country_iso_code"),
)


def _entry_source(extended: bool, decode: bool, extra: bool, index: str | None, generate_id: bool) -> str:
    """One function per option set doing what ``entry`` does through four calls: the record's
    time formatted once, the index, the id and the whole document as a single dict literal
    (a record with MCP stats, whose fields go before the extras, takes ``_document`` instead).

    ``index`` is the index expression when it needs no per-record choice, else ``None``."""
    names = {f.attr: f.es for f in schema.columns("es")}
    pairs = [(names[a], "stamp" if a == "timestamp" else f"r.{a}") for a in TYK_ORDER]
    if extended:
        pairs += [(names[a], f"decode_raw(r.{a})" if decode and a in _DECODED else f"r.{a}") for a in EXTENDED]
    if extra:
        pairs += list(_EXTRAS)
    body = ", ".join(f"{k!r}: {v}" for k, v in pairs)
    ident = "tyk_id(r)" if generate_id else "r.record_id"
    where = index if index is not None else "index(r, day)"
    geo = (
        "    lat, lon = r.geo_location_latitude, r.geo_location_longitude\n"
        "    if (lat or lon) and -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0:\n"
        "        doc['geo_location'] = {'lat': lat, 'lon': lon}\n"
        if extra
        else ""
    )
    return (
        "def entry(r):\n"
        "    sec, frac = divmod(r.timestamp_ns, 1_000_000_000)\n"
        "    head, suffix, day = time_parts(sec, r.tz)\n"
        "    stamp = f'{head}.{frac:09d}'.rstrip('0') + suffix if frac else head + suffix\n"
        "    mcp = r.mcp_stats\n"
        "    if mcp and mcp.get('IsMCP'):\n"
        f"        return {where}, {ident}, document(r, stamp)\n"
        f"    doc = {{{body}}}\n"
        f"{geo}"
        f"    return {where}, {ident}, doc\n"
    )


class DocumentBuilder:
    """Builds index name, id and document for records, with the options fixed once."""

    def __init__(self, meta: Meta) -> None:
        self.index_name = meta.index_name
        self.mcp_index_name = meta.mcp_index_name
        self.rolling = meta.rolling_index
        self.per_kind = meta.index_per_kind
        self.per_event_kind = meta.event_kind_index
        self.extended = meta.extended_stats
        self.decode = meta.decode_base64
        self.generate_id = meta.generate_id
        self.extra = meta.extra_fields
        self.entry: Callable[[Record], tuple[str, str, dict[str, Any]]] = self._compile_entry()

    # -- index ---------------------------------------------------------------------------------

    def index_for(self, r: Record) -> str:
        return self._index(r, record_day(r.timestamp_ns, r.tz) if self.rolling else "")

    def _index(self, r: Record, day: str) -> str:
        base = self.mcp_index_name if self.mcp_index_name and r.is_mcp else self.index_name
        if self.per_kind:
            base = f"{base}_{kind_of(r.response_code)}"
        elif self.per_event_kind:
            base = f"{base}_{event_kind(r)}"
        return f"{base}-{day}" if self.rolling else base

    def base_names(self) -> list[str]:
        """Every index name this pump can write to, without the date (for the template)."""
        bases = [self.index_name]
        if self.mcp_index_name and self.mcp_index_name != self.index_name:
            bases.append(self.mcp_index_name)
        if self.per_kind:
            bases = [f"{b}_{k}" for b in bases for k in KINDS]
        elif self.per_event_kind:
            bases = [f"{b}_{k}" for b in bases for k in EVENT_KINDS]
        return bases

    def index_patterns(self) -> list[str]:
        """Patterns the index template must match: each base name, and ``base-*`` when rolling."""
        return [p for b in self.base_names() for p in ((b, f"{b}-*") if self.rolling else (b,))]

    # -- id ------------------------------------------------------------------------------------

    def id_for(self, r: Record) -> str:
        """Our record id (a hash of the payload bytes: the same payload redelivered gets the same
        id), or Tyk's murmur3 id with ``generate_id``."""
        if self.generate_id:
            return tyk_document_id(r.timestamp_ns, r.method, r.path, r.ip_address, r.api_id, r.oauth_id, r.request_time, r.alias)
        return r.record_id

    # -- document ------------------------------------------------------------------------------

    def _compile_entry(self) -> Callable[[Record], tuple[str, str, dict[str, Any]]]:
        """``entry(r)``: index, id and document together, the record's time formatted once for
        both; generated for these options (:func:`_entry_source`), as it runs once per record."""
        index: str | None = None
        if not (self.per_kind or self.per_event_kind or self.mcp_index_name):
            index = f"{self.index_name!r} + '-' + day" if self.rolling else repr(self.index_name)
        source = _entry_source(self.extended, self.decode, self.extra, index, self.generate_id)
        namespace = {
            "__name__": __name__,
            "time_parts": time_parts,
            "decode_raw": decode_raw,
            "kind_of": kind_of,
            "index": self._index,
            "tyk_id": self.id_for,
            "document": self._document,
        }
        return schema.compile_function("entry", source, namespace)

    def document(self, r: Record) -> dict[str, Any]:
        return self._document(r, timestamp_text(r.timestamp_ns, r.tz))

    def _document(self, r: Record, stamp: str) -> dict[str, Any]:
        doc = _tyk_document(r, stamp, self.extended, self.decode)
        mcp = r.mcp_stats
        if mcp and mcp.get("IsMCP"):
            doc["mcp_method"] = mcp.get("JSONRPCMethod", "")
            doc["mcp_primitive_type"] = mcp.get("PrimitiveType", "")
            doc["mcp_primitive_name"] = mcp.get("PrimitiveName", "")
        if self.extra:
            self._add_extras(doc, r)
        return doc

    @staticmethod
    def _add_extras(doc: dict[str, Any], r: Record) -> None:
        doc["event_kind"] = kind_of(r.response_code)
        doc["host"] = r.host
        doc["latency_total_ms"] = r.latency_total
        doc["latency_upstream_ms"] = r.latency_upstream
        doc["latency_gateway_ms"] = r.latency_gateway
        doc["geo_country_iso_code"] = r.geo_country_iso_code
        lat, lon = r.geo_location_latitude, r.geo_location_longitude
        # (0, 0) is Go's zero value, i.e. "no GeoIP data", not a point in the Gulf of Guinea.
        if (lat or lon) and -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0:
            doc["geo_location"] = {"lat": lat, "lon": lon}
