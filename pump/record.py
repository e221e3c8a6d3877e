"""The analytics record: one API request as Tyk's gateway recorded it.

The gateway sends a Go ``AnalyticsRecord`` (tyk-pump.md §2.1). We keep it as a flat ``__slots__``
object rather than a pydantic model because hundreds of thousands of them are built per minute;
config is validated, records are not. Nested Go structs (``Geo``, ``Network``, ``Latency``) are
flattened into prefixed attributes whose names are also the SQL column suffixes, and
``to_json()`` rebuilds Tyk's nested JSON shape for the sinks that print JSON.

Times are timezone-aware ``datetime`` objects in the pump's zone (Tyk decodes into the pump host's
local zone; containers are normally UTC). The nanosecond part that ``datetime`` cannot hold is kept
in ``timestamp_ns`` so outputs that print Go's nanosecond times stay exact.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: Go's zero ``time.Time`` as unix seconds (0001-01-01T00:00:00Z).
GO_ZERO_UNIX = -62135596800
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _local_zone() -> tzinfo:
    """The zone records are shown in: ``TZ`` if set, else the host's ``/etc/localtime``, else UTC."""
    name = os.environ.get("TZ", "").lstrip(":")
    try:
        if name:
            return ZoneInfo(name)
        if os.path.exists("/etc/localtime"):
            with open("/etc/localtime", "rb") as fh:
                return ZoneInfo.from_file(fh, key="localtime")
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    return UTC


LOCAL_ZONE: tzinfo = _local_zone()


_SECOND_CACHE: dict[tuple[int, tzinfo], datetime] = {}


def shard_suffix(day: datetime) -> str:
    """``YYYYMMDD`` of a date, always 8 digits (year 1 → ``00010101``): the suffix of every
    sharded SQL table (raw, aggregate and uptime pumps), so the same date names the same day in
    each. Not ``%Y``, which does not zero-pad years below 1000 on glibc."""
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"


def time_from_unix(sec: int, nsec: int = 0, zone: tzinfo | None = None) -> datetime:
    """Build an aware datetime from Go's ``[sec, nsec]`` pair, in ``zone`` (default: the pump's).

    Records arrive thousands per second with the same second, so the whole-second datetime is
    cached and only the microseconds are filled in. Go's zero time (year 1) cannot move west of
    UTC in Python, so times that would fall off the calendar stay in UTC instead of raising.
    """
    zone = zone or LOCAL_ZONE
    key = (sec, zone)
    base = _SECOND_CACHE.get(key)
    if base is None:
        dt = _EPOCH + timedelta(seconds=sec)
        try:
            base = dt.astimezone(zone)
        except (OverflowError, ValueError):
            base = dt
        if len(_SECOND_CACHE) > 4096:
            _SECOND_CACHE.clear()
        _SECOND_CACHE[key] = base
    return base.replace(microsecond=nsec // 1000) if nsec >= 1000 else base


ZERO_TIME = time_from_unix(GO_ZERO_UNIX, 0, UTC)


def unix_ns(dt: datetime, nsec_remainder: int = 0) -> int:
    """Unix nanoseconds of an aware datetime (plus sub-microsecond nanoseconds)."""
    delta = dt - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000 + nsec_remainder


#: Attribute names in Go struct order; this order is also the msgpack key order on the wire.
FIELDS: tuple[str, ...] = (
    "method",
    "host",
    "path",
    "raw_path",
    "content_length",
    "user_agent",
    "day",
    "month",
    "year",
    "hour",
    "response_code",
    "api_key",
    "timestamp",
    "api_version",
    "api_name",
    "api_id",
    "org_id",
    "oauth_id",
    "request_time",
    "raw_request",
    "raw_response",
    "ip_address",
    "geo_country_iso_code",
    "geo_city_geoname_id",
    "geo_city_names",
    "geo_location_latitude",
    "geo_location_longitude",
    "geo_location_time_zone",
    "network_open_connections",
    "network_closed_connections",
    "network_bytes_in",
    "network_bytes_out",
    "latency_total",
    "latency_upstream",
    "latency_gateway",
    "tags",
    "alias",
    "track_path",
    "expire_at",
    "api_schema",
    "original_path",
    "listen_path",
    "graphql_stats",
    "mcp_stats",
    "collection_name",
)

#: Zero values, as Go leaves a field that the payload does not carry.
DEFAULTS: dict[str, Any] = {name: "" for name in FIELDS}
DEFAULTS.update(
    content_length=0,
    day=0,
    month=0,
    year=0,
    hour=0,
    response_code=0,
    request_time=0,
    geo_city_geoname_id=0,
    geo_city_names=None,
    geo_location_latitude=0.0,
    geo_location_longitude=0.0,
    network_open_connections=0,
    network_closed_connections=0,
    network_bytes_in=0,
    network_bytes_out=0,
    latency_total=0,
    latency_upstream=0,
    latency_gateway=0,
    tags=None,
    track_path=False,
    timestamp=ZERO_TIME,
    expire_at=ZERO_TIME,
    graphql_stats=None,
    mcp_stats=None,
)

#: Top-level JSON names that ``ignore_fields`` may zero, mapped to the attributes they cover.
JSON_GROUPS: dict[str, tuple[str, ...]] = {
    "geo": tuple(f for f in FIELDS if f.startswith("geo_")),
    "network": tuple(f for f in FIELDS if f.startswith("network_")),
    "latency": tuple(f for f in FIELDS if f.startswith("latency_")),
    "expireAt": ("expire_at",),
}
for _name in FIELDS:
    if not _name.startswith(("geo_", "network_", "latency_")) and _name not in ("expire_at", "collection_name"):
        JSON_GROUPS[_name] = (_name,)


_TIME_FIELDS = ("timestamp", "expire_at")
_PLAIN_FIELDS = tuple(f for f in FIELDS if f not in _TIME_FIELDS)


class Record:
    """One decoded analytics record.

    ``record_id`` is a stable hash of the encoded bytes: the same payload delivered twice has the
    same id, which is what makes sink writes idempotent. The two times are stored as unix
    nanoseconds (``timestamp_ns``, ``expire_at_ns``) and turned into aware datetimes only when a
    sink asks, in ``tz`` (the zone a protobuf record names) or else the pump's zone.
    """

    __slots__ = (*_PLAIN_FIELDS, "timestamp_ns", "expire_at_ns", "tz", "record_id", "_ts", "_exp")

    method: str
    host: str
    path: str
    raw_path: str
    content_length: int
    user_agent: str
    day: int
    month: int
    year: int
    hour: int
    response_code: int
    api_key: str
    api_version: str
    api_name: str
    api_id: str
    org_id: str
    oauth_id: str
    request_time: int
    raw_request: str
    raw_response: str
    ip_address: str
    geo_country_iso_code: str
    geo_city_geoname_id: int
    geo_city_names: dict[str, str] | None
    geo_location_latitude: float
    geo_location_longitude: float
    geo_location_time_zone: str
    network_open_connections: int
    network_closed_connections: int
    network_bytes_in: int
    network_bytes_out: int
    latency_total: int
    latency_upstream: int
    latency_gateway: int
    tags: list[str] | None
    alias: str
    track_path: bool
    api_schema: str
    original_path: str
    listen_path: str
    graphql_stats: dict[str, Any] | None
    mcp_stats: dict[str, Any] | None
    collection_name: str
    timestamp_ns: int
    expire_at_ns: int
    tz: tzinfo | None
    record_id: str
    _ts: datetime | None
    _exp: datetime | None

    def __init__(self, **values: Any) -> None:
        for name in _PLAIN_FIELDS:
            setattr(self, name, values.pop(name, DEFAULTS[name]))
        ts = values.pop("timestamp", None)
        exp = values.pop("expire_at", None)
        self.tz = values.pop("tz", None) or (ts.tzinfo if ts is not None else None)
        self.record_id = values.pop("record_id", "")
        self._ts = self._exp = None
        self.timestamp_ns = values.pop("timestamp_ns", None) or unix_ns(ts or ZERO_TIME)
        self.expire_at_ns = values.pop("expire_at_ns", None) or unix_ns(exp or ZERO_TIME)
        if values:
            raise TypeError(f"unknown record fields: {', '.join(sorted(values))}")

    @property
    def timestamp(self) -> datetime:
        """When the gateway handled the request, aware, in the record's zone."""
        if self._ts is None:
            sec, nsec = divmod(self.timestamp_ns, 1_000_000_000)
            self._ts = time_from_unix(sec, nsec, self.tz)
        return self._ts

    @timestamp.setter
    def timestamp(self, value: datetime) -> None:
        self.timestamp_ns = unix_ns(value)
        self._ts = None

    @property
    def expire_at(self) -> datetime:
        """The record's TTL target (Mongo TTL index on ``expireAt``)."""
        if self._exp is None:
            sec, nsec = divmod(self.expire_at_ns, 1_000_000_000)
            self._exp = time_from_unix(sec, nsec, self.tz)
        return self._exp

    @expire_at.setter
    def expire_at(self, value: datetime) -> None:
        self.expire_at_ns = unix_ns(value)
        self._exp = None

    def copy(self) -> Record:
        """A shallow copy, for transforms that change fields of one pump's view only."""
        new = Record.__new__(Record)
        for name in Record.__slots__:
            setattr(new, name, getattr(self, name))
        return new

    def __repr__(self) -> str:
        return (
            f"Record(id={self.record_id!r}, {self.method} {self.path!r} -> {self.response_code}, "
            f"api={self.api_id!r}, org={self.org_id!r}, at={self.timestamp.isoformat()})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        names = (*_PLAIN_FIELDS, "timestamp_ns", "expire_at_ns", "record_id")
        return all(getattr(self, n) == getattr(other, n) for n in names)

    __hash__ = None  # type: ignore[assignment]

    @property
    def is_graph(self) -> bool:
        """A GraphQL record: aggregated separately by Tyk and skipped by the REST aggregates."""
        return bool(self.graphql_stats and self.graphql_stats.get("IsGraphQL"))

    @property
    def is_mcp(self) -> bool:
        """An MCP (Model Context Protocol) record: skipped by the raw SQL/Mongo pumps and aggregates."""
        return bool(self.mcp_stats and self.mcp_stats.get("IsMCP"))

    def to_json(self) -> dict[str, Any]:
        """Tyk's JSON shape of the record (``json.Marshal`` of the Go struct, tyk-pump.md §2.2)."""
        gql = self.graphql_stats or {}
        mcp = self.mcp_stats or {}
        return {
            "method": self.method,
            "host": self.host,
            "path": self.path,
            "raw_path": self.raw_path,
            "content_length": self.content_length,
            "user_agent": self.user_agent,
            "day": self.day,
            "month": self.month,
            "year": self.year,
            "hour": self.hour,
            "response_code": self.response_code,
            "api_key": self.api_key,
            "timestamp": go_rfc3339(self.timestamp, self.timestamp_ns),
            "api_version": self.api_version,
            "api_name": self.api_name,
            "api_id": self.api_id,
            "org_id": self.org_id,
            "oauth_id": self.oauth_id,
            "request_time": self.request_time,
            "raw_request": self.raw_request,
            "raw_response": self.raw_response,
            "ip_address": self.ip_address,
            "geo": {
                "country": {"iso_code": self.geo_country_iso_code},
                "city": {"geoname_id": self.geo_city_geoname_id, "names": self.geo_city_names},
                "location": {
                    "latitude": self.geo_location_latitude,
                    "longitude": self.geo_location_longitude,
                    "time_zone": self.geo_location_time_zone,
                },
            },
            "network": {
                "open_connections": self.network_open_connections,
                "closed_connections": self.network_closed_connections,
                "bytes_in": self.network_bytes_in,
                "bytes_out": self.network_bytes_out,
            },
            "latency": {
                "total": self.latency_total,
                "upstream": self.latency_upstream,
                "gateway": self.latency_gateway,
            },
            "tags": self.tags,
            "alias": self.alias,
            "track_path": self.track_path,
            "expireAt": go_rfc3339(self.expire_at, self.expire_at_ns),
            "api_schema": self.api_schema,
            "original_path": self.original_path,
            "listen_path": self.listen_path,
            "graphql_stats": {
                "Variables": gql.get("Variables", ""),
                "RootFields": gql.get("RootFields"),
                "Types": gql.get("Types"),
                "Errors": _graphql_errors(gql.get("Errors")),
                "OperationType": gql.get("OperationType", 0),
                "HasErrors": gql.get("HasErrors", False),
                "IsGraphQL": gql.get("IsGraphQL", False),
            },
            "mcp_stats": {
                "is_mcp": mcp.get("IsMCP", False),
                "jsonrpc_method": mcp.get("JSONRPCMethod", ""),
                "primitive_type": mcp.get("PrimitiveType", ""),
                "primitive_name": mcp.get("PrimitiveName", ""),
            },
        }


def _graphql_errors(errors: Any) -> Any:
    """GraphQL errors travel with Go field names (``Message``, ``Path``) but print with their
    JSON tags (``message``, ``path``)."""
    if not isinstance(errors, list):
        return errors
    return [
        {"message": e.get("Message", e.get("message", "")), "path": e.get("Path", e.get("path"))} if isinstance(e, dict) else e
        for e in errors
    ]


def _frac(ns: int) -> str:
    """Go's ``.999999999`` fraction: up to nine digits, trailing zeros dropped, none if zero."""
    nanos = ns % 1_000_000_000
    return f".{nanos:09d}".rstrip("0") if nanos else ""


def _offset(dt: datetime) -> tuple[int, int, int]:
    off = dt.utcoffset() or timedelta(0)
    total = int(off.total_seconds())
    sign = 1 if total >= 0 else -1
    total = abs(total)
    return sign, total // 3600, (total % 3600) // 60


def go_rfc3339(dt: datetime, ns: int) -> str:
    """Go's ``time.RFC3339Nano`` as ``json.Marshal`` prints it (``Z`` for UTC)."""
    sign, hh, mm = _offset(dt)
    zone = "Z" if (hh, mm) == (0, 0) else f"{'+' if sign > 0 else '-'}{hh:02d}:{mm:02d}"
    return f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}{_frac(ns)}{zone}"


_GO_STRING_CACHE: dict[tuple[int, tzinfo | None], tuple[str, str]] = {}


def go_time_string(ns: int, zone: tzinfo | None = None) -> str:
    """Go's ``time.Time.String()`` of unix nanoseconds ``ns`` in ``zone`` (default: the pump's):
    ``2006-01-02 15:04:05.999999999 -0700 MST``.

    Cached per (second, zone), and no datetime is built on a hit: the CSV pump prints two times
    per record and consecutive records share their second."""
    sec, frac = divmod(ns, 1_000_000_000)
    key = (sec, zone)
    parts = _GO_STRING_CACHE.get(key)
    if parts is None:
        dt = time_from_unix(sec, 0, zone)
        sign, hh, mm = _offset(dt)
        name = dt.tzname() or ""
        if not name or name.startswith(("+", "-")) or (name.startswith("UTC") and name != "UTC"):
            name = f"{'+' if sign > 0 else '-'}{hh:02d}{mm:02d}" if (hh, mm) != (0, 0) else "UTC"
        parts = (
            f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d} {dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}",
            f" {'+' if sign > 0 else '-'}{hh:02d}{mm:02d} {name}",
        )
        if len(_GO_STRING_CACHE) > 4096:
            _GO_STRING_CACHE.clear()
        _GO_STRING_CACHE[key] = parts
    if frac:
        return f"{parts[0]}.{frac:09d}".rstrip("0") + parts[1]
    return parts[0] + parts[1]


#: Uptime (host checker) record fields, in Go struct order (tyk-pump.md §4 "Uptime pumps").
UPTIME_FIELDS: tuple[str, ...] = (
    "url",
    "request_time",
    "response_code",
    "tcp_error",
    "server_error",
    "day",
    "month",
    "year",
    "hour",
    "minute",
    "timestamp",
    "expire_at",
    "api_id",
    "org_id",
)


class UptimeRecord:
    """One host-checker result from ``host-checker:tyk-uptime-analytics``."""

    __slots__ = (*UPTIME_FIELDS, "record_id", "timestamp_ns", "expire_at_ns")

    url: str
    request_time: int
    response_code: int
    tcp_error: bool
    server_error: bool
    day: int
    month: int
    year: int
    hour: int
    minute: int
    timestamp: datetime
    expire_at: datetime
    api_id: str
    org_id: str
    record_id: str
    timestamp_ns: int
    expire_at_ns: int

    def __init__(self, **values: Any) -> None:
        defaults: dict[str, Any] = {
            "url": "", "request_time": 0, "response_code": 0, "tcp_error": False, "server_error": False,
            "day": 0, "month": 0, "year": 0, "hour": 0, "minute": 0, "timestamp": ZERO_TIME,
            "expire_at": ZERO_TIME, "api_id": "", "org_id": "",
        }  # fmt: skip
        for name in UPTIME_FIELDS:
            setattr(self, name, values.pop(name, defaults[name]))
        self.record_id = values.pop("record_id", "")
        self.timestamp_ns = values.pop("timestamp_ns", None) or unix_ns(self.timestamp)
        self.expire_at_ns = values.pop("expire_at_ns", None) or unix_ns(self.expire_at)
        if values:
            raise TypeError(f"unknown uptime fields: {', '.join(sorted(values))}")

    def __repr__(self) -> str:
        return f"UptimeRecord({self.url!r} -> {self.response_code}, at={self.timestamp.isoformat()})"

    def to_json(self) -> dict[str, Any]:
        """Tyk's JSON/BSON field names of ``UptimeReportData``."""
        return {
            "url": self.url,
            "requesttime": self.request_time,
            "responsecode": self.response_code,
            "tcperror": self.tcp_error,
            "servererror": self.server_error,
            "day": self.day,
            "month": self.month,
            "year": self.year,
            "hour": self.hour,
            "minute": self.minute,
            "timestamp": go_rfc3339(self.timestamp, self.timestamp_ns),
            "expireAt": go_rfc3339(self.expire_at, self.expire_at_ns),
            "apiid": self.api_id,
            "orgid": self.org_id,
        }
