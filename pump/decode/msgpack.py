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

from typing import Any

import msgpack
import xxhash

from pump.errors import DecodeError
from pump.record import GO_ZERO_UNIX, Record

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
_INT_FIELDS = {
    "ContentLength": "content_length", "Day": "day", "Month": "month", "Year": "year", "Hour": "hour",
    "ResponseCode": "response_code", "RequestTime": "request_time", "Geo.City.GeoNameID": "geo_city_geoname_id",
    "Network.OpenConnections": "network_open_connections", "Network.ClosedConnection": "network_closed_connections",
    "Network.BytesIn": "network_bytes_in", "Network.BytesOut": "network_bytes_out", "Latency.Total": "latency_total",
    "Latency.Upstream": "latency_upstream", "Latency.Gateway": "latency_gateway",
}  # fmt: skip


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


_GQL_ZERO = {"Variables": "", "RootFields": None, "Types": None, "Errors": None, "OperationType": 0, "HasErrors": False, "IsGraphQL": False}
_MCP_ZERO = {"IsMCP": False, "JSONRPCMethod": "", "PrimitiveType": "", "PrimitiveName": ""}


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


def decode_record(raw: bytes) -> Record:
    """Decode one gateway payload; raises :class:`DecodeError` with a reason a person can act on.

    The common case (a field of the right type) is checked inline: a function call per field
    would cost more than the msgpack parse itself.
    """
    m = _unpack(raw)
    if m.__class__ is not dict:
        raise DecodeError(f"not an analytics record: top-level msgpack value is {type(m).__name__}, not a map")
    g = m.get
    if "TimeStamp" not in m and "Method" not in m and "APIID" not in m:
        raise DecodeError("not an analytics record: none of TimeStamp, Method, APIID is present")
    r: Record = _new(Record)
    v = g("Method")
    r.method = v if v.__class__ is str else _str(v, "Method")
    v = g("Host")
    r.host = v if v.__class__ is str else _str(v, "Host")
    v = g("Path")
    r.path = v if v.__class__ is str else _str(v, "Path")
    v = g("RawPath")
    r.raw_path = v if v.__class__ is str else _str(v, "RawPath")
    v = g("ContentLength")
    r.content_length = v if v.__class__ is int else _int(v, "ContentLength")
    v = g("UserAgent")
    r.user_agent = v if v.__class__ is str else _str(v, "UserAgent")
    v = g("Day")
    r.day = v if v.__class__ is int else _int(v, "Day")
    v = g("Month")
    r.month = v if v.__class__ is int else _int(v, "Month")
    v = g("Year")
    r.year = v if v.__class__ is int else _int(v, "Year")
    v = g("Hour")
    r.hour = v if v.__class__ is int else _int(v, "Hour")
    v = g("ResponseCode")
    r.response_code = v if v.__class__ is int else _int(v, "ResponseCode")
    v = g("APIKey")
    r.api_key = v if v.__class__ is str else _str(v, "APIKey")
    r.timestamp_ns = _time(g("TimeStamp"), "TimeStamp")
    v = g("APIVersion")
    r.api_version = v if v.__class__ is str else _str(v, "APIVersion")
    v = g("APIName")
    r.api_name = v if v.__class__ is str else _str(v, "APIName")
    v = g("APIID")
    r.api_id = v if v.__class__ is str else _str(v, "APIID")
    v = g("OrgID")
    r.org_id = v if v.__class__ is str else _str(v, "OrgID")
    v = g("OauthID")
    r.oauth_id = v if v.__class__ is str else _str(v, "OauthID")
    v = g("RequestTime")
    r.request_time = v if v.__class__ is int else _int(v, "RequestTime")
    v = g("RawRequest")
    r.raw_request = v if v.__class__ is str else _str(v, "RawRequest")
    v = g("RawResponse")
    r.raw_response = v if v.__class__ is str else _str(v, "RawResponse")
    v = g("IPAddress")
    r.ip_address = v if v.__class__ is str else _str(v, "IPAddress")
    geo = g("Geo")
    if geo:
        geo = _map(geo, "Geo")
        country = _map(geo.get("Country"), "Geo.Country")
        city = _map(geo.get("City"), "Geo.City")
        loc = _map(geo.get("Location"), "Geo.Location")
        r.geo_country_iso_code = _str(country.get("ISOCode"), "Geo.Country.ISOCode")
        r.geo_city_geoname_id = _int(city.get("GeoNameID"), "Geo.City.GeoNameID")
        r.geo_city_names = _names(city.get("Names"))
        r.geo_location_latitude = _float(loc.get("Latitude"), "Geo.Location.Latitude")
        r.geo_location_longitude = _float(loc.get("Longitude"), "Geo.Location.Longitude")
        r.geo_location_time_zone = _str(loc.get("TimeZone"), "Geo.Location.TimeZone")
    else:
        r.geo_country_iso_code = r.geo_location_time_zone = ""
        r.geo_city_geoname_id = 0
        r.geo_city_names = None
        r.geo_location_latitude = r.geo_location_longitude = 0.0
    net = _map(g("Network"), "Network")
    r.network_open_connections = _int(net.get("OpenConnections"), "Network.OpenConnections")
    r.network_closed_connections = _int(net.get("ClosedConnection"), "Network.ClosedConnection")
    r.network_bytes_in = _int(net.get("BytesIn"), "Network.BytesIn")
    r.network_bytes_out = _int(net.get("BytesOut"), "Network.BytesOut")
    lat = _map(g("Latency"), "Latency")
    r.latency_total = _int(lat.get("Total"), "Latency.Total")
    r.latency_upstream = _int(lat.get("Upstream"), "Latency.Upstream")
    r.latency_gateway = _int(lat.get("Gateway"), "Latency.Gateway")
    r.tags = _tags(g("Tags"))
    v = g("Alias")
    r.alias = v if v.__class__ is str else _str(v, "Alias")
    r.track_path = _bool(g("TrackPath"), "TrackPath")
    r.expire_at_ns = _time(g("ExpireAt"), "ExpireAt")
    v = g("ApiSchema")
    r.api_schema = v if v.__class__ is str else _str(v, "ApiSchema")
    v = g("OriginalPath")
    r.original_path = v if v.__class__ is str else _str(v, "OriginalPath")
    v = g("ListenPath")
    r.listen_path = v if v.__class__ is str else _str(v, "ListenPath")
    r.graphql_stats = _graphql(g("GraphQLStats"))
    r.mcp_stats = _mcp(g("MCPStats"))
    v = g("CollectionName")
    r.collection_name = v if v.__class__ is str else _str(v, "CollectionName")
    if b"\xcf" in raw and (  # only msgpack's uint64 (0xcf) can carry more than int64: a C-speed scan
        max(r.content_length, r.day, r.month, r.year, r.hour, r.response_code, r.request_time, r.geo_city_geoname_id,
            r.network_open_connections, r.network_closed_connections, r.network_bytes_in, r.network_bytes_out,
            r.latency_total, r.latency_upstream, r.latency_gateway)
        > INT64_MAX
    ):  # fmt: skip
        raise _int_overflow(r)
    r.tz = r._ts = r._exp = None
    r.record_id = xxhash.xxh3_128_hexdigest(raw)
    return r


# --- encoding (the demo, the benchmark and the tests write exactly what a gateway writes) -------


def _go_time(ns: int) -> list[int]:
    sec, nsec = divmod(ns, 1_000_000_000)
    return [sec, nsec]


def go_fields(r: Record) -> dict[str, Any]:
    """The record as the Go struct's msgpack map: Go names, struct order, Go zero values."""
    gql = r.graphql_stats
    mcp = r.mcp_stats
    return {
        "Method": r.method,
        "Host": r.host,
        "Path": r.path,
        "RawPath": r.raw_path,
        "ContentLength": r.content_length,
        "UserAgent": r.user_agent,
        "Day": r.day,
        "Month": r.month,
        "Year": r.year,
        "Hour": r.hour,
        "ResponseCode": r.response_code,
        "APIKey": r.api_key,
        "TimeStamp": _go_time(r.timestamp_ns),
        "APIVersion": r.api_version,
        "APIName": r.api_name,
        "APIID": r.api_id,
        "OrgID": r.org_id,
        "OauthID": r.oauth_id,
        "RequestTime": r.request_time,
        "RawRequest": r.raw_request,
        "RawResponse": r.raw_response,
        "IPAddress": r.ip_address,
        "Geo": {
            "Country": {"ISOCode": r.geo_country_iso_code},
            "City": {"GeoNameID": r.geo_city_geoname_id, "Names": r.geo_city_names},
            "Location": {
                "Latitude": float(r.geo_location_latitude),
                "Longitude": float(r.geo_location_longitude),
                "TimeZone": r.geo_location_time_zone,
            },
        },
        "Network": {
            "OpenConnections": r.network_open_connections,
            "ClosedConnection": r.network_closed_connections,
            "BytesIn": r.network_bytes_in,
            "BytesOut": r.network_bytes_out,
        },
        "Latency": {"Total": r.latency_total, "Upstream": r.latency_upstream, "Gateway": r.latency_gateway},
        "Tags": r.tags,
        "Alias": r.alias,
        "TrackPath": r.track_path,
        "ExpireAt": _go_time(r.expire_at_ns),
        "ApiSchema": r.api_schema,
        "OriginalPath": r.original_path,
        "ListenPath": r.listen_path,
        "GraphQLStats": {
            "Variables": (gql or {}).get("Variables", ""),
            "RootFields": (gql or {}).get("RootFields"),
            "Types": (gql or {}).get("Types"),
            "Errors": (gql or {}).get("Errors"),
            "OperationType": (gql or {}).get("OperationType", 0),
            "HasErrors": (gql or {}).get("HasErrors", False),
            "IsGraphQL": (gql or {}).get("IsGraphQL", False),
        },
        "MCPStats": {
            "IsMCP": (mcp or {}).get("IsMCP", False),
            "JSONRPCMethod": (mcp or {}).get("JSONRPCMethod", ""),
            "PrimitiveType": (mcp or {}).get("PrimitiveType", ""),
            "PrimitiveName": (mcp or {}).get("PrimitiveName", ""),
        },
        "CollectionName": r.collection_name,
    }


def encode_record(r: Record) -> bytes:
    """Encode a record byte-for-byte as the Go gateway does."""
    return msgpack.packb(go_fields(r), use_bin_type=True)  # type: ignore[no-any-return]


def encode_map(values: dict[str, Any]) -> bytes:
    """Encode an arbitrary Go-keyed map (used for uptime records and hostile test payloads)."""
    return msgpack.packb(values, use_bin_type=True)  # type: ignore[no-any-return]
