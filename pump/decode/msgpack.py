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
        return int(v)
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
    gql = g("GraphQLStats")
    r.graphql_stats = _map(gql, "GraphQLStats") if gql is not None else None
    mcp = g("MCPStats")
    r.mcp_stats = _map(mcp, "MCPStats") if mcp is not None else None
    v = g("CollectionName")
    r.collection_name = v if v.__class__ is str else _str(v, "CollectionName")
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
