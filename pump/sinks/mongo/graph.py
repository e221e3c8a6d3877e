"""``mongo-graph`` and ``mongo-mcp``: Tyk's GraphQL and MCP Mongo pumps (tyk-pump.md §4).

Both write into ``collection_name`` (required, as for ``mongo``), with ``mongo``'s indexes, capping,
size-bounded concurrent runs and idempotent ``_id``. ``mongo-graph`` keeps only GraphQL records
(and, like every Tyk Mongo pump, no ``ResponseCode -1`` record) and stores Tyk's ``GraphRecord``:
the record's document inline plus ``types``, ``operationtype`` (``Query``/``Mutation``/
``Subscription`` or empty), ``variables``, ``rootfields``, ``errors`` (``[{message, path}]``) and
``haserrors`` (also true for a response code >= 400); Tyk stores an oversized GraphQL record whole,
so does this pump. ``mongo-mcp`` keeps only MCP records and stores Tyk's ``MCPRecord``:
``jsonrpcmethod``, ``primitivetype``, ``primitivename`` and the record inline; an oversized one
loses its raw payloads as in ``mongo``. Nil maps and lists are stored empty (the codec's rule).
"""

from __future__ import annotations

from typing import Any

from bson import Int64

from pump.record import Record
from pump.sinks.base import SinkContext, SinkSpec
from pump.sinks.mongo.documents import to_document
from pump.sinks.mongo.raw import Meta, MongoSink

OPERATIONS = {1: "Query", 2: "Mutation", 3: "Subscription"}


def _bson_value(v: Any) -> Any:
    """A GraphQL error path element as Go's driver writes it (Go ints are int64)."""
    return Int64(v) if isinstance(v, int) and not isinstance(v, bool) else v


def graph_document(r: Record) -> dict[str, Any]:
    """Tyk's ``GraphRecord`` document (``types`` first, the record inline, then the GraphQL fields)."""
    stats = r.graphql_stats or {}
    doc = to_document(r)
    errors = []
    for e in stats.get("Errors") or ():
        if isinstance(e, dict):
            path = e.get("Path", e.get("path")) or []
            errors.append({"message": str(e.get("Message", e.get("message", "")) or ""), "path": [_bson_value(p) for p in path]})
    types = {str(k): list(v or []) for k, v in (stats.get("Types") or {}).items()}
    return {
        "_id": doc.pop("_id"),
        "types": types,
        **doc,
        "operationtype": OPERATIONS.get(int(stats.get("OperationType") or 0), ""),
        "variables": str(stats.get("Variables") or ""),
        "rootfields": list(stats.get("RootFields") or []),
        "errors": errors,
        "haserrors": bool(stats.get("HasErrors")) or r.response_code >= 400,
    }


def mcp_document(r: Record) -> dict[str, Any]:
    """Tyk's ``MCPRecord`` document: the three MCP fields, then the record inline."""
    stats = r.mcp_stats or {}
    doc = to_document(r)
    return {
        "_id": doc.pop("_id"),
        "jsonrpcmethod": str(stats.get("JSONRPCMethod") or ""),
        "primitivetype": str(stats.get("PrimitiveType") or ""),
        "primitivename": str(stats.get("PrimitiveName") or ""),
        **doc,
    }


def keeps_graph(r: Record) -> bool:
    return r.is_graph and r.response_code != -1


def keeps_mcp(r: Record) -> bool:
    return r.is_mcp and r.response_code != -1


def build_graph(ctx: SinkContext, meta: Meta) -> MongoSink:
    return MongoSink(ctx.name, meta, ctx.pump.timeout, skip=False, keep=keeps_graph, document=graph_document, strip=False)


def build_mcp(ctx: SinkContext, meta: Meta) -> MongoSink:
    return MongoSink(ctx.name, meta, ctx.pump.timeout, skip=False, keep=keeps_mcp, document=mcp_document)


#: ``mongo-graph``.
GRAPH = SinkSpec(meta=Meta, build=build_graph)
#: ``mongo-mcp``.
MCP = SinkSpec(meta=Meta, build=build_mcp)
