"""The columns of Tyk's raw table ``tyk_analytics`` and how the record's collections are written
into them (JSON text, as Tyk's gorm fork writes them), shared by every SQL dialect."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

from pump import schema
from pump.sinks.sql.values import go_safe_json

#: The record fields that are SQL columns, in table order (a GraphQL/MCP stats field stands for its
#: sub-table's columns).
SQL_FIELDS: tuple[schema.Field, ...] = schema.columns("sql")


def field_columns(f: schema.Field) -> tuple[tuple[str, str], ...]:
    """The (column, kind) pairs of one record field: one, or its sub-table's columns with the
    field's prefix (Tyk's gorm fork stores GraphQLStats and MCPStats too, ignoring their
    ``gorm:"-:all"``, embedded with the json-tag prefix)."""
    assert f.sql is not None
    if f.type in schema.SUBFIELDS:
        return tuple((f"{f.sql}_{s.sql}", schema.SQL_KINDS[s.type]) for s in schema.SUBFIELDS[f.type])
    return ((f.sql, schema.SQL_KINDS[f.type]),)


#: (column, kind) in table order. ``id`` is ours; the rest are Tyk's names (the ``sql`` column of
#: :data:`pump.schema.FIELDS` and of its GraphQL/MCP sub-tables). Existing tables depend on the
#: order: the schema table's order is the table's.
RAW_COLUMNS: tuple[tuple[str, str], ...] = (("id", "text"), *(c for f in SQL_FIELDS for c in field_columns(f)))

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


_CITY_JSON: dict[tuple[tuple[str, str], ...], str] = {}
_CITY_CACHE_SIZE = 4096


def city_names_json(names: dict[str, str] | None) -> str:
    """``geo_city_names``: the map as JSON with sorted keys, ``{}`` when there is none.

    Cached by the map's items: records repeat the same few cities, and the JSON encoder cost more
    than the rest of a COPY line. Only all-text maps are cached, so a hit (an equal tuple of
    strings) always renders the same text."""
    if not names:
        return "{}"
    key = tuple(names.items())
    try:
        text = _CITY_JSON.get(key)
    except TypeError:  # an unhashable value: not a decoded record's map
        return go_safe_json(names, "{}")
    if text is None:
        text = go_safe_json(names, "{}")
        if all(k.__class__ is str and v.__class__ is str for k, v in key):
            if len(_CITY_JSON) >= _CITY_CACHE_SIZE:
                _CITY_JSON.clear()
            _CITY_JSON[key] = text
    return text


def graph_errors(errors: Any) -> Any:
    """GraphQL errors as Tyk's ``GraphError`` marshals them (``message``, ``path``)."""
    if not isinstance(errors, list):
        return errors
    return [
        {"message": e.get("Message", e.get("message", "")), "path": e.get("Path", e.get("path"))} if isinstance(e, dict) else e
        for e in errors
    ]


def _sub_value(s: schema.SubField) -> str:
    """Source of one sub-table column's value from the stats dict ``s`` (JSON as Tyk's gorm fork
    writes collections, Go's zero value for a missing key)."""
    get = f"s.get({s.go!r})"
    return {
        schema.STRING: f'str({get} or "")',
        schema.INT: f"int({get} or 0)",
        schema.BOOL: f"bool({get})",
        schema.TAGS: f'go_safe_json({get}, "[]")',
        schema.TYPE_MAP: f'go_safe_json({get}, "{{}}")',
        schema.GRAPH_ERRORS: f'go_safe_json(graph_errors({get}), "[]")',
    }[s.type]


def _sub_row(go_type: str) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    name = f"{go_type.lower()}_row"
    values = ", ".join(_sub_value(s) for s in schema.SUBFIELDS[go_type])
    namespace = {"__name__": __name__, "go_safe_json": go_safe_json, "graph_errors": graph_errors}
    return schema.compile_function(name, f"def {name}(s):\n    return ({values},)\n", namespace)


_graphql_row = _sub_row(schema.GRAPHQL)
_mcp_row = _sub_row(schema.MCP)

#: GraphQL columns of a record without GraphQL stats (most records): Go's zero values.
NO_GRAPHQL: tuple[Any, ...] = _graphql_row({})
#: MCP columns of a record without MCP stats.
NO_MCP: tuple[Any, ...] = _mcp_row({})


def graphql_values(stats: dict[str, Any] | None) -> tuple[Any, ...]:
    """The seven ``graphql_stats_*`` values: variables, root fields, types, errors (JSON as Tyk's
    gorm fork writes them), operation type (0–3), has errors, is GraphQL."""
    return _graphql_row(stats) if stats else NO_GRAPHQL


def mcp_values(stats: dict[str, Any] | None) -> tuple[Any, ...]:
    """The four ``mcp_stats_*`` values (always the zero values in ``sql``: it skips MCP records)."""
    return _mcp_row(stats) if stats else NO_MCP


#: The column values of each sub-table field, by record attribute.
SUB_VALUES: dict[str, Callable[[dict[str, Any] | None], tuple[Any, ...]]] = {
    "graphql_stats": graphql_values,
    "mcp_stats": mcp_values,
}
