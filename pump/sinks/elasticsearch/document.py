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
from datetime import datetime, timedelta, tzinfo
from typing import Any

from pump.record import Record, time_from_unix
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


#: Seconds per cached block of time. Every modern zone offset is a multiple of 15 minutes, so
#: within an aligned 15-minute block a zone's offset and local date are constant.
_BLOCK = 900

_BLOCKS: dict[tuple[int, tzinfo | None], tuple[str, int, str, str] | None] = {}


def _zone_suffix(dt: datetime) -> str:
    total = int((dt.utcoffset() or timedelta(0)).total_seconds())
    if total == 0:
        return "Z"
    sign = "+" if total > 0 else "-"
    hh, mm = divmod(abs(total) // 60, 60)
    return f"{sign}{hh:02d}:{mm:02d}"


def _block(block: int, zone: tzinfo | None) -> tuple[str, int, str, str] | None:
    """(``YYYY-MM-DDTHH:``, first minute, zone suffix, ``YYYY.MM.DD``) of a 15-minute block, or
    ``None`` when the zone's offset is odd (historic local mean time) or changes inside it."""
    start = time_from_unix(block * _BLOCK, 0, zone)
    end = time_from_unix(block * _BLOCK + _BLOCK - 1, 0, zone)
    offset = start.utcoffset() or timedelta(0)
    if offset != (end.utcoffset() or timedelta(0)) or offset.total_seconds() % _BLOCK:
        return None
    head = f"{start.year:04d}-{start.month:02d}-{start.day:02d}T{start.hour:02d}:"
    return head, start.minute, _zone_suffix(start), f"{start.year:04d}.{start.month:02d}.{start.day:02d}"


def _time_parts(sec: int, zone: tzinfo | None) -> tuple[str, str, str]:
    """(``YYYY-MM-DDTHH:MM:SS``, zone suffix, ``YYYY.MM.DD``) of a unix second in ``zone``.

    Records of a busy gateway are spread over time, so a per-second cache would miss on almost
    every record, and building a datetime per record costs more than the rest of the document.
    The date, hour and offset are cached per 15-minute block; minutes and seconds are arithmetic."""
    block = sec // _BLOCK
    key = (block, zone)
    try:
        parts = _BLOCKS[key]
    except KeyError:
        if len(_BLOCKS) > 4096:
            _BLOCKS.clear()
        parts = _BLOCKS[key] = _block(block, zone)
    if parts is not None:
        head, minute, suffix, day = parts
        m, s = divmod(sec - block * _BLOCK, 60)
        return f"{head}{minute + m:02d}:{s:02d}", suffix, day
    dt = time_from_unix(sec, 0, zone)
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}",
        _zone_suffix(dt),
        f"{dt.year:04d}.{dt.month:02d}.{dt.day:02d}",
    )


def timestamp_text(ns: int, zone: tzinfo | None) -> str:
    """Go's RFC 3339 with nanoseconds (what Tyk's ``@timestamp`` is marshalled as)."""
    sec, frac = divmod(ns, 1_000_000_000)
    head, suffix, _ = _time_parts(sec, zone)
    if frac:
        return f"{head}.{frac:09d}".rstrip("0") + suffix
    return head + suffix


def record_day(ns: int, zone: tzinfo | None) -> str:
    """``YYYY.MM.DD`` of the record in its zone (Tyk's rolling suffix format)."""
    return _time_parts(ns // 1_000_000_000, zone)[2]


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

    def entry(self, r: Record) -> tuple[str, str, dict[str, Any]]:
        """Index, id and document together, formatting the record's time once for both."""
        sec, frac = divmod(r.timestamp_ns, 1_000_000_000)
        head, suffix, day = _time_parts(sec, r.tz)
        stamp = f"{head}.{frac:09d}".rstrip("0") + suffix if frac else head + suffix
        return self._index(r, day), self.id_for(r), self._document(r, stamp)

    def document(self, r: Record) -> dict[str, Any]:
        return self._document(r, timestamp_text(r.timestamp_ns, r.tz))

    def _document(self, r: Record, stamp: str) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "@timestamp": stamp,
            "http_method": r.method,
            "request_uri": r.path,
            "request_uri_full": r.raw_path,
            "response_code": r.response_code,
            "ip_address": r.ip_address,
            "api_key": r.api_key,
            "api_version": r.api_version,
            "api_name": r.api_name,
            "api_id": r.api_id,
            "org_id": r.org_id,
            "oauth_id": r.oauth_id,
            "request_time_ms": r.request_time,
            "alias": r.alias,
            "content_length": r.content_length,
            "tags": r.tags,
        }
        if self.extended:
            if self.decode:
                doc["raw_request"] = decode_raw(r.raw_request)
                doc["raw_response"] = decode_raw(r.raw_response)
            else:
                doc["raw_request"] = r.raw_request
                doc["raw_response"] = r.raw_response
            doc["user_agent"] = r.user_agent
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
