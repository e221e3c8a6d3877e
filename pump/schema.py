"""The analytics record's schema, once: every field with its name in each format Tyk speaks.

Tyk's Go ``AnalyticsRecord`` (tyk-pump.md §2.1) travels as msgpack keyed by Go field names, as
protobuf (``normalproto.AnalyticsRecord``), and leaves the pump as JSON (``json`` tags), SQL
columns (gorm tags), Mongo documents (lower-cased Go names), CSV columns, Elasticsearch documents
and the flat message of the Kafka and syslog pumps. Each of those names is a column of
:data:`FIELDS`, one row per :class:`pump.record.Record` attribute in Go struct order (which is
also the msgpack key order, the JSON key order and the SQL/CSV column order).

The decoders and encoders are generated from this table when their module is imported
(:func:`compile_function`): the hot paths keep the speed of hand-unrolled code — one attribute
access per field, no loop, no per-field call — while the table stays the only place a name is
written. A nested Go struct is a dotted path (``Geo.City.GeoNameID``); ``None`` means the format
does not carry the field (``bson:"-"``, not a SQL column, not in Tyk's CSV, not on the protobuf
wire). The ``sql`` name of ``graphql_stats`` and ``mcp_stats`` is the prefix of their sub-table's
columns (:data:`GRAPHQL_FIELDS`, :data:`MCP_FIELDS`): Tyk's gorm fork embeds both structs.
"""

from __future__ import annotations

import linecache
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

# Go types of the fields (what decides how each format renders a value).
STRING, INT, INT64, UINT, MONTH, FLOAT, BOOL, TIME, TAGS, NAMES, GRAPHQL, MCP = (
    "string", "int", "int64", "uint", "time.Month", "float64", "bool", "time.Time", "[]string",
    "map[string]string", "GraphQLStats", "MCPStats",
)  # fmt: skip
# Go types found only inside GraphQLStats.
TYPE_MAP, GRAPH_ERRORS = "map[string][]string", "[]GraphError"
INTEGERS = frozenset((INT, INT64, UINT, MONTH))


class Field(NamedTuple):
    """One field of the record and its name in every format (``None``: not in that format)."""

    attr: str  # the Record attribute
    type: str  # the Go type
    go: str  # msgpack (Go field names), dotted for nested structs
    json: str | None  # Tyk's json.Marshal output
    bson: str | None  # Tyk's Mongo documents
    sql: str | None  # Tyk's SQL column
    csv: str | None  # Tyk's CSV header
    proto: str | None  # normalproto.AnalyticsRecord (names of pump.decode.protobuf's schema)
    es: str | None  # Tyk's Elasticsearch document
    msg: str | None  # Tyk's Kafka/syslog message


_: None = None
# attr                        type     go                         json                        bson                      sql                           csv                              proto                       es                  msg
_ROWS: tuple[tuple[Any, ...], ...] = (
    ("method",                    STRING,  "Method",                  "method",                   "method",                 "method",                     "Method",                        "Method",                   "http_method",      "method"),
    ("host",                      STRING,  "Host",                    "host",                     "host",                   "host",                       "Host",                          "Host",                     _,                  "host"),
    ("path",                      STRING,  "Path",                    "path",                     "path",                   "path",                       "Path",                          "Path",                     "request_uri",      "path"),
    ("raw_path",                  STRING,  "RawPath",                 "raw_path",                 "rawpath",                "rawpath",                    "RawPath",                       "RawPath",                  "request_uri_full", "raw_path"),
    ("content_length",            INT64,   "ContentLength",           "content_length",           "contentlength",          "contentlength",              "ContentLength",                 "ContentLength",            "content_length",   "content_length"),
    ("user_agent",                STRING,  "UserAgent",               "user_agent",               "useragent",              "useragent",                  "UserAgent",                     "UserAgent",                "user_agent",       "user_agent"),
    ("day",                       INT,     "Day",                     "day",                      "day",                    "day",                        "Day",                           "Day",                      _,                  _),
    ("month",                     MONTH,   "Month",                   "month",                    "month",                  "month",                      "Month",                         "Month",                    _,                  _),
    ("year",                      INT,     "Year",                    "year",                     "year",                   "year",                       "Year",                          "Year",                     _,                  _),
    ("hour",                      INT,     "Hour",                    "hour",                     "hour",                   "hour",                       "Hour",                          "Hour",                     _,                  _),
    ("response_code",             INT,     "ResponseCode",            "response_code",            "responsecode",           "responsecode",               "ResponseCode",                  "ResponseCode",             "response_code",    "response_code"),
    ("api_key",                   STRING,  "APIKey",                  "api_key",                  "apikey",                 "apikey",                     "APIKey",                        "APIKey",                   "api_key",          "api_key"),
    ("timestamp",                 TIME,    "TimeStamp",               "timestamp",                "timestamp",              "timestamp",                  "TimeStamp",                     "TimeStamp",                "@timestamp",       "timestamp"),
    ("api_version",               STRING,  "APIVersion",              "api_version",              "apiversion",             "apiversion",                 "APIVersion",                    "APIVersion",               "api_version",      "api_version"),
    ("api_name",                  STRING,  "APIName",                 "api_name",                 "apiname",                "api_name",                   "APIName",                       "APIName",                  "api_name",         "api_name"),
    ("api_id",                    STRING,  "APIID",                   "api_id",                   "apiid",                  "apiid",                      "APIID",                         "APIID",                    "api_id",           "api_id"),
    ("org_id",                    STRING,  "OrgID",                   "org_id",                   "orgid",                  "orgid",                      "OrgID",                         "OrgID",                    "org_id",           "org_id"),
    ("oauth_id",                  STRING,  "OauthID",                 "oauth_id",                 "oauthid",                "oauthid",                    "OauthID",                       "OauthID",                  "oauth_id",         "oauth_id"),
    ("request_time",              INT64,   "RequestTime",             "request_time",             "requesttime",            "requesttime",                "RequestTime",                   "RequestTime",              "request_time_ms",  "request_time_ms"),
    ("raw_request",               STRING,  "RawRequest",              "raw_request",              "rawrequest",             "rawrequest",                 "RawRequest",                    "RawRequest",               "raw_request",      "raw_request"),
    ("raw_response",              STRING,  "RawResponse",             "raw_response",             "rawresponse",            "rawresponse",                "RawResponse",                   "RawResponse",              "raw_response",     "raw_response"),
    ("ip_address",                STRING,  "IPAddress",               "ip_address",               "ipaddress",              "ipaddress",                  "IPAddress",                     "IPAddress",                "ip_address",       "ip_address"),
    ("geo_country_iso_code",      STRING,  "Geo.Country.ISOCode",     "geo.country.iso_code",     "geo.country.isocode",    "geo_country_iso_code",       "GeoData.Country.ISOCode",       "Geo.Country.ISOCode",      _,                  _),
    ("geo_city_geoname_id",       UINT,    "Geo.City.GeoNameID",      "geo.city.geoname_id",      "geo.city.geonameid",     "geo_city_geoname_id",        "GeoData.City.GeoNameID",        "Geo.City.GeoNameID",       _,                  _),
    ("geo_city_names",            NAMES,   "Geo.City.Names",          "geo.city.names",           "geo.city.names",         "geo_city_names",             "GeoData.City.Names",            "Geo.City.Names",           _,                  _),
    ("geo_location_latitude",     FLOAT,   "Geo.Location.Latitude",   "geo.location.latitude",    "geo.location.latitude",  "geo_location_latitude",      "GeoData.Location.Latitude",     "Geo.Location.Latitude",    _,                  _),
    ("geo_location_longitude",    FLOAT,   "Geo.Location.Longitude",  "geo.location.longitude",   "geo.location.longitude", "geo_location_longitude",     "GeoData.Location.Longitude",    "Geo.Location.Longitude",   _,                  _),
    ("geo_location_time_zone",    STRING,  "Geo.Location.TimeZone",   "geo.location.time_zone",   "geo.location.timezone",  "geo_location_time_zone",     "GeoData.Location.TimeZone",     "Geo.Location.TimeZone",    _,                  _),
    ("network_open_connections",  INT64,   "Network.OpenConnections", "network.open_connections", "network.openconnections", "network_open_connections",  "NetworkStats.OpenConnections",  "Network.OpenConnections",  _,                  _),
    ("network_closed_connections", INT64,  "Network.ClosedConnection", "network.closed_connections", "network.closedconnection", "network_closed_connections", "NetworkStats.ClosedConnection", "Network.ClosedConnections", _,             _),
    ("network_bytes_in",          INT64,   "Network.BytesIn",         "network.bytes_in",         "network.bytesin",        "network_bytes_in",           "NetworkStats.BytesIn",          "Network.BytesIn",          _,                  _),
    ("network_bytes_out",         INT64,   "Network.BytesOut",        "network.bytes_out",        "network.bytesout",       "network_bytes_out",          "NetworkStats.BytesOut",         "Network.BytesOut",         _,                  _),
    ("latency_total",             INT64,   "Latency.Total",           "latency.total",            "latency.total",          "latency_total",              "Latency.Total",                 "Latency.Total",            _,                  _),
    ("latency_upstream",          INT64,   "Latency.Upstream",        "latency.upstream",         "latency.upstream",       "latency_upstream",           "Latency.Upstream",              "Latency.Upstream",         _,                  _),
    ("latency_gateway",           INT64,   "Latency.Gateway",         "latency.gateway",          "latency.gateway",        "latency_gateway",            "Latency.Gateway",               _,                          _,                  _),
    ("tags",                      TAGS,    "Tags",                    "tags",                     "tags",                   "tags",                       "Tags",                          "Tags",                     "tags",             "tags"),
    ("alias",                     STRING,  "Alias",                   "alias",                    "alias",                  "alias",                      "Alias",                         "Alias",                    "alias",            "alias"),
    ("track_path",                BOOL,    "TrackPath",               "track_path",               "trackpath",              "trackpath",                  "TrackPath",                     "TrackPath",                _,                  _),
    ("expire_at",                 TIME,    "ExpireAt",                "expireAt",                 "expireAt",               "expireAt",                   "ExpireAt",                      "ExpireAt",                 _,                  _),
    ("api_schema",                STRING,  "ApiSchema",               "api_schema",               _,                        _,                            "ApiSchema",                     "ApiSchema",                _,                  _),
    ("original_path",             STRING,  "OriginalPath",            "original_path",            "originalpath",           "originalpath",               "OriginalPath",                  "OriginalPath",             _,                  _),
    ("listen_path",               STRING,  "ListenPath",              "listen_path",              "listenpath",             "listenpath",                 "ListenPath",                    "ListenPath",               _,                  _),
    ("graphql_stats",             GRAPHQL, "GraphQLStats",            "graphql_stats",            _,                        "graphql_stats",              _,                               "GraphQLStats",             _,                  _),
    ("mcp_stats",                 MCP,     "MCPStats",                "mcp_stats",                _,                        "mcp_stats",                  _,                               "MCPStats",                 _,                  _),
    ("collection_name",           STRING,  "CollectionName",          _,                          _,                        _,                            _,                               _,                          _,                  _),
)  # fmt: skip

FIELDS: tuple[Field, ...] = tuple(Field(*row) for row in _ROWS)
BY_ATTR: dict[str, Field] = {f.attr: f for f in FIELDS}

#: Go's zero value of each type, as a record holds it when the payload does not carry the field.
ZERO: dict[str, Any] = {
    STRING: "",
    INT: 0,
    INT64: 0,
    UINT: 0,
    MONTH: 0,
    FLOAT: 0.0,
    BOOL: False,
    TAGS: None,
    NAMES: None,
    GRAPHQL: None,
    MCP: None,
}


class SubField(NamedTuple):
    """A field of the GraphQL/MCP stats a record keeps as a Go-keyed dict."""

    go: str  # the key in the record's dict, as msgpack carries it
    json: str  # Tyk's JSON name
    proto: str  # the protobuf field name
    zero: Any  # what a missing key reads as
    type: str  # the Go type
    sql: str  # the SQL column after the parent's prefix (gorm's name: json tag, else snake case)


# GraphQLStats has no json tags, so its SQL columns are gorm's snake case of the Go names.
# go               json               proto              zero   type          sql
GRAPHQL_FIELDS: tuple[SubField, ...] = (
    SubField("Variables",     "Variables",     "Variables",     "",    STRING,       "variables"),
    SubField("RootFields",    "RootFields",    "RootFields",    None,  TAGS,         "root_fields"),
    SubField("Types",         "Types",         "Types",         None,  TYPE_MAP,     "types"),
    SubField("Errors",        "Errors",        "GraphErrors",   None,  GRAPH_ERRORS, "errors"),
    SubField("OperationType", "OperationType", "OperationType", 0,     INT,          "operation_type"),
    SubField("HasErrors",     "HasErrors",     "HasError",      False, BOOL,         "has_errors"),
    SubField("IsGraphQL",     "IsGraphQL",     "IsGraphQL",     False, BOOL,         "is_graph_ql"),
)  # fmt: skip
MCP_FIELDS: tuple[SubField, ...] = (
    SubField("IsMCP",         "is_mcp",         "IsMCP",         False, BOOL,   "is_mcp"),
    SubField("JSONRPCMethod", "jsonrpc_method", "JSONRPCMethod", "",    STRING, "jsonrpc_method"),
    SubField("PrimitiveType", "primitive_type", "PrimitiveType", "",    STRING, "primitive_type"),
    SubField("PrimitiveName", "primitive_name", "PrimitiveName", "",    STRING, "primitive_name"),
)  # fmt: skip
#: The sub-table of each Go type a record keeps as a Go-keyed dict.
SUBFIELDS: dict[str, tuple[SubField, ...]] = {GRAPHQL: GRAPHQL_FIELDS, MCP: MCP_FIELDS}

#: The SQL column kind (``pump.sinks.sql.schema.TYPES``) of each Go type: collections are JSON
#: text, floats ``numeric`` as Tyk's gorm creates them.
SQL_KINDS: dict[str, str] = {
    STRING: "text", INT: "bigint", INT64: "bigint", UINT: "bigint", MONTH: "bigint", FLOAT: "numeric",
    BOOL: "bool", TIME: "timestamptz", TAGS: "text", NAMES: "text", TYPE_MAP: "text", GRAPH_ERRORS: "text",
}  # fmt: skip


def columns(fmt: str) -> tuple[Field, ...]:
    """The fields a format carries (``"sql"``, ``"csv"``, ``"bson"``…), in table order."""
    return tuple(f for f in FIELDS if getattr(f, fmt) is not None)


# --------------------------------------------------------------------------- code generation


def nested_literal(entries: Iterable[tuple[str, str]], indent: str = "    ") -> str:
    """A dict literal (source text) from ``(dotted key, value expression)`` pairs in order:
    ``("geo.city.names", "r.x")`` nests ``{"geo": {"city": {"names": r.x}}}``; keys sharing a
    prefix share the nested dict, which appears where its first key does."""
    tree: dict[str, Any] = {}
    for key, expr in entries:
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = expr

    def render(node: dict[str, Any], depth: int) -> str:
        pad = indent * (depth + 1)
        items = [f"{pad}{k!r}: {render(v, depth + 1) if isinstance(v, dict) else v}," for k, v in node.items()]
        return "{\n" + "\n".join(items) + "\n" + indent * depth + "}"

    return render(tree, 1)


def compile_function(name: str, source: str, namespace: dict[str, Any]) -> Callable[..., Any]:
    """Compile generated ``source`` defining ``name`` with the globals of ``namespace`` (the
    calling module's, so the function sees its helpers). The source is registered with
    ``linecache`` so tracebacks and debuggers show the generated lines."""
    filename = f"<pump.schema: {namespace.get('__name__', '?')}.{name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    exec(compile(source, filename, "exec"), namespace)
    fn: Callable[..., Any] = namespace[name]
    fn.__source__ = source  # type: ignore[attr-defined]
    return fn
