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

from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import Any

from pump import schema
from pump.gotime import ZERO_TIME, go_rfc3339, rfc3339_nano, time_from_unix, unix_ns

#: Attribute names in Go struct order; this order is also the msgpack key order on the wire.
FIELDS: tuple[str, ...] = tuple(f.attr for f in schema.FIELDS)

#: Zero values, as Go leaves a field that the payload does not carry.
DEFAULTS: dict[str, Any] = {f.attr: ZERO_TIME if f.type == schema.TIME else schema.ZERO[f.type] for f in schema.FIELDS}

#: Top-level JSON names that ``ignore_fields`` may zero, mapped to the attributes they cover.
JSON_GROUPS: dict[str, tuple[str, ...]] = {}
for _f in schema.FIELDS:
    if _f.json is not None:
        _top = _f.json.split(".")[0]
        JSON_GROUPS[_top] = (*JSON_GROUPS.get(_top, ()), _f.attr)


_TIME_FIELDS = tuple(f.attr for f in schema.FIELDS if f.type == schema.TIME)
_PLAIN_FIELDS = tuple(f for f in FIELDS if f not in _TIME_FIELDS)


def _json_value(f: schema.Field) -> str:
    """The expression ``to_json`` renders a field with (``self`` is the record)."""
    if f.type == schema.TIME:
        return f"rfc3339_nano(self.{f.attr}_ns, self.tz)"
    if f.type == schema.GRAPHQL:
        entries = [
            (s.json, f"_graphql_errors(gql.get({s.go!r}))" if s.go == "Errors" else f"gql.get({s.go!r}{_zero(s)})")
            for s in schema.GRAPHQL_FIELDS
        ]
        return schema.nested_literal(entries)
    if f.type == schema.MCP:
        entries = [(s.json, f"mcp.get({s.go!r}{_zero(s)})") for s in schema.MCP_FIELDS]
        return schema.nested_literal(entries)
    return f"self.{f.attr}"


def _zero(s: schema.SubField) -> str:
    return "" if s.zero is None else f", {s.zero!r}"


_TO_JSON = f"""\
def to_json(self):
    gql = self.graphql_stats or {{}}
    mcp = self.mcp_stats or {{}}
    return {schema.nested_literal((f.json or "", _json_value(f)) for f in schema.columns("json"))}
"""


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
        """Tyk's JSON shape of the record (``json.Marshal`` of the Go struct, tyk-pump.md §2.2);
        generated from :data:`pump.schema.FIELDS` (the ``json`` column) below."""
        return _to_json(self)


def _graphql_errors(errors: Any) -> Any:
    """GraphQL errors travel with Go field names (``Message``, ``Path``) but print with their
    JSON tags (``message``, ``path``)."""
    if not isinstance(errors, list):
        return errors
    return [
        {"message": e.get("Message", e.get("message", "")), "path": e.get("Path", e.get("path"))} if isinstance(e, dict) else e
        for e in errors
    ]


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


_to_json: Callable[[Record], dict[str, Any]] = schema.compile_function(
    "to_json", _TO_JSON, {"rfc3339_nano": rfc3339_nano, "_graphql_errors": _graphql_errors}
)
