"""The columns of Tyk's raw table ``tyk_analytics`` and how the record's collections are written
into them (JSON text, as Tyk's gorm fork writes them), shared by every SQL dialect."""

from __future__ import annotations

import json
from typing import Any

import orjson

from pump.sinks.sql.values import go_safe_json

#: (column, kind) in table order. ``id`` is ours; the rest are Tyk's names.
RAW_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "text"),
    ("method", "text"),
    ("host", "text"),
    ("path", "text"),
    ("rawpath", "text"),
    ("contentlength", "bigint"),
    ("useragent", "text"),
    ("day", "bigint"),
    ("month", "bigint"),
    ("year", "bigint"),
    ("hour", "bigint"),
    ("responsecode", "bigint"),
    ("apikey", "text"),
    ("timestamp", "timestamptz"),
    ("apiversion", "text"),
    ("api_name", "text"),
    ("apiid", "text"),
    ("orgid", "text"),
    ("oauthid", "text"),
    ("requesttime", "bigint"),
    ("rawrequest", "text"),
    ("rawresponse", "text"),
    ("ipaddress", "text"),
    ("geo_country_iso_code", "text"),
    ("geo_city_geoname_id", "bigint"),
    ("geo_city_names", "text"),
    ("geo_location_latitude", "numeric"),
    ("geo_location_longitude", "numeric"),
    ("geo_location_time_zone", "text"),
    ("network_open_connections", "bigint"),
    ("network_closed_connections", "bigint"),
    ("network_bytes_in", "bigint"),
    ("network_bytes_out", "bigint"),
    ("latency_total", "bigint"),
    ("latency_upstream", "bigint"),
    ("latency_gateway", "bigint"),
    ("tags", "text"),
    ("alias", "text"),
    ("trackpath", "bool"),
    ("expireAt", "timestamptz"),
    ("originalpath", "text"),
    ("listenpath", "text"),
    # Tyk's gorm fork stores GraphQLStats and MCPStats too (it ignores their gorm:"-:all"),
    # embedded with the json-tag prefix; GraphQLStats has no json tags, so gorm's snake case.
    ("graphql_stats_variables", "text"),
    ("graphql_stats_root_fields", "text"),
    ("graphql_stats_types", "text"),
    ("graphql_stats_errors", "text"),
    ("graphql_stats_operation_type", "bigint"),
    ("graphql_stats_has_errors", "bool"),
    ("graphql_stats_is_graph_ql", "bool"),
    ("mcp_stats_is_mcp", "bool"),
    ("mcp_stats_jsonrpc_method", "text"),
    ("mcp_stats_primitive_type", "text"),
    ("mcp_stats_primitive_name", "text"),
)

#: Tyk's indexes on the raw table, named ``<table>_idx_<column>``.
RAW_INDEXES: tuple[tuple[str, tuple[str, ...]], ...] = tuple(
    (f"idx_{c}", (c,)) for c in ("responsecode", "apikey", "timestamp", "apiid", "orgid", "oauthid")
)


def tags_json(tags: list[str] | None) -> str:
    """Tags as a JSON array (``[]`` when there are none): portable, and ``tags::jsonb`` in PG."""
    if not tags:
        return "[]"
    try:
        return orjson.dumps(tags).decode()
    except (orjson.JSONEncodeError, TypeError):  # surrogates from undecodable bytes
        return json.dumps([str(t) for t in tags], ensure_ascii=False)


#: GraphQL columns of a record without GraphQL stats (most records): Go's zero values.
NO_GRAPHQL: tuple[Any, ...] = ("", "[]", "{}", "[]", 0, False, False)
#: MCP columns of a record without MCP stats.
NO_MCP: tuple[Any, ...] = (False, "", "", "")


def city_names_json(names: dict[str, str] | None) -> str:
    """``geo_city_names``: the map as JSON with sorted keys, ``{}`` when there is none."""
    return go_safe_json(names, "{}") if names else "{}"


def graphql_values(stats: dict[str, Any] | None) -> tuple[Any, ...]:
    """The seven ``graphql_stats_*`` values: variables, root fields, types, errors (JSON as Tyk's
    gorm fork writes them), operation type (0–3), has errors, is GraphQL."""
    if not stats:
        return NO_GRAPHQL
    errors = stats.get("Errors")
    if isinstance(errors, list):
        errors = [
            {"message": e.get("Message", e.get("message", "")), "path": e.get("Path", e.get("path"))} if isinstance(e, dict) else e
            for e in errors
        ]
    return (
        str(stats.get("Variables") or ""),
        go_safe_json(stats.get("RootFields"), "[]"),
        go_safe_json(stats.get("Types"), "{}"),
        go_safe_json(errors, "[]"),
        int(stats.get("OperationType") or 0),
        bool(stats.get("HasErrors")),
        bool(stats.get("IsGraphQL")),
    )


def mcp_values(stats: dict[str, Any] | None) -> tuple[Any, ...]:
    """The four ``mcp_stats_*`` values (always the zero values in ``sql``: it skips MCP records)."""
    if not stats:
        return NO_MCP
    return (
        bool(stats.get("IsMCP")),
        str(stats.get("JSONRPCMethod") or ""),
        str(stats.get("PrimitiveType") or ""),
        str(stats.get("PrimitiveName") or ""),
    )
