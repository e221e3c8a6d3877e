"""The variables a condition can test: every record field by its Tyk JSON name, plus derived ones.

Names are the JSON paths of Tyk's record (``api_id``, ``geo.country.iso_code``,
``latency.upstream``, ``expireAt``…), what a user sees in the CSV/stdout/Mongo output. Each variable
has a type, which decides the operators and values a rule may use, and a *column* function that
reads the variable for a whole batch at once (``map`` over an ``attrgetter`` runs in C).

Derived variables: ``event_kind`` (:mod:`pump.transforms.eventkind`), ``browser``, ``os`` and
``device`` (:mod:`pump.transforms.useragent`), ``timestamp`` (compared as an ISO 8601 time).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Literal

from pump.record import Record
from pump.transforms.eventkind import event_kinds

Kind = Literal["str", "int", "float", "bool", "list", "dict", "time"]
Column = Callable[[Sequence[Record]], list[Any]]


@dataclass(frozen=True, slots=True)
class Variable:
    """One testable variable: its name, its value type and how to read it for a batch."""

    name: str
    kind: Kind
    column: Column


def _attr(name: str) -> Column:
    get = attrgetter(name)
    return lambda records: list(map(get, records))


def _gql(key: str) -> Column:
    return lambda records: [(r.graphql_stats or {}).get(key) for r in records]


def _mcp(key: str, default: Any) -> Column:
    return lambda records: [(r.mcp_stats or {}).get(key, default) for r in records]


def _ua(part: str) -> Column:
    def column(records: Sequence[Record]) -> list[Any]:
        from pump.transforms.useragent import parse_user_agent

        return [getattr(parse_user_agent(r.user_agent), part) for r in records]

    return column


#: JSON name → (record attribute, type) for the plain fields.
_PLAIN: dict[str, tuple[str, Kind]] = {
    "method": ("method", "str"),
    "host": ("host", "str"),
    "path": ("path", "str"),
    "raw_path": ("raw_path", "str"),
    "content_length": ("content_length", "int"),
    "user_agent": ("user_agent", "str"),
    "day": ("day", "int"),
    "month": ("month", "int"),
    "year": ("year", "int"),
    "hour": ("hour", "int"),
    "response_code": ("response_code", "int"),
    "api_key": ("api_key", "str"),
    "api_version": ("api_version", "str"),
    "api_name": ("api_name", "str"),
    "api_id": ("api_id", "str"),
    "org_id": ("org_id", "str"),
    "oauth_id": ("oauth_id", "str"),
    "request_time": ("request_time", "int"),
    "raw_request": ("raw_request", "str"),
    "raw_response": ("raw_response", "str"),
    "ip_address": ("ip_address", "str"),
    "geo.country.iso_code": ("geo_country_iso_code", "str"),
    "geo.city.geoname_id": ("geo_city_geoname_id", "int"),
    "geo.city.names": ("geo_city_names", "dict"),
    "geo.location.latitude": ("geo_location_latitude", "float"),
    "geo.location.longitude": ("geo_location_longitude", "float"),
    "geo.location.time_zone": ("geo_location_time_zone", "str"),
    "network.open_connections": ("network_open_connections", "int"),
    "network.closed_connections": ("network_closed_connections", "int"),
    "network.bytes_in": ("network_bytes_in", "int"),
    "network.bytes_out": ("network_bytes_out", "int"),
    "latency.total": ("latency_total", "int"),
    "latency.upstream": ("latency_upstream", "int"),
    "latency.gateway": ("latency_gateway", "int"),
    "tags": ("tags", "list"),
    "alias": ("alias", "str"),
    "track_path": ("track_path", "bool"),
    "api_schema": ("api_schema", "str"),
    "original_path": ("original_path", "str"),
    "listen_path": ("listen_path", "str"),
    "timestamp": ("timestamp_ns", "time"),
    "expireAt": ("expire_at_ns", "time"),
}

#: JSON name → record attribute of the plain (non-derived) fields, for the masking of fields.
ATTRIBUTES: dict[str, str] = {name: attr for name, (attr, _) in _PLAIN.items()}
KINDS: dict[str, Kind] = {name: kind for name, (_, kind) in _PLAIN.items()}

VARIABLES: dict[str, Variable] = {name: Variable(name, kind, _attr(attr)) for name, (attr, kind) in _PLAIN.items()}
VARIABLES.update(
    {
        "graphql_stats.OperationType": Variable("graphql_stats.OperationType", "int", _gql("OperationType")),
        "graphql_stats.HasErrors": Variable("graphql_stats.HasErrors", "bool", _gql("HasErrors")),
        "graphql_stats.IsGraphQL": Variable("graphql_stats.IsGraphQL", "bool", _gql("IsGraphQL")),
        "graphql_stats.RootFields": Variable("graphql_stats.RootFields", "list", _gql("RootFields")),
        "graphql_stats.Types": Variable("graphql_stats.Types", "dict", _gql("Types")),
        "mcp_stats.is_mcp": Variable("mcp_stats.is_mcp", "bool", _mcp("IsMCP", False)),
        "mcp_stats.jsonrpc_method": Variable("mcp_stats.jsonrpc_method", "str", _mcp("JSONRPCMethod", "")),
        "mcp_stats.primitive_type": Variable("mcp_stats.primitive_type", "str", _mcp("PrimitiveType", "")),
        "mcp_stats.primitive_name": Variable("mcp_stats.primitive_name", "str", _mcp("PrimitiveName", "")),
        "event_kind": Variable("event_kind", "str", event_kinds),
        "browser": Variable("browser", "str", _ua("browser")),
        "os": Variable("os", "str", _ua("os")),
        "device": Variable("device", "str", _ua("device")),
    }
)


def suggest(name: str) -> str:
    """`` (did you mean 'x'?)`` for a misspelt variable, else empty."""
    import difflib

    close = difflib.get_close_matches(name, VARIABLES, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
