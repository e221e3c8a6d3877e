"""Tyk's MCP aggregate as Mongo updates (``mongo-mcp-aggregate``, tyk-pump.md §4): one document per
org, bucket and API (``{orgid, timestamp, owner_apiid}``) in ``z_tyk_mcp_analyticz_aggregate_<org>``
(and ``tyk_mcp_analytics_aggregate`` with ``use_mixed_collection``).

Step 1 is the REST aggregate's ``AsChange`` plus, for ``methods``, ``primitives`` and ``names``,
the counters Tyk's ``addMCPDimensionUpdates`` writes (the network counters are not set for them);
step 2 is the REST ``AsTimeUpdate``, which also recomputes ``lists.methods``/``primitives``/``names``
(:data:`pump.aggregate.mongo_update.MCP_DIMENSIONS`).
"""

from __future__ import annotations

from typing import Any

from pump.aggregate.graph import MCPAggregate
from pump.aggregate.mongo_update import as_change

ORG_COLLECTION_PREFIX = "z_tyk_mcp_analyticz_aggregate_"
MIXED_COLLECTION = "tyk_mcp_analytics_aggregate"


def mcp_collection_names(org_id: str, use_mixed_collection: bool) -> tuple[str, ...]:
    """Collections one MCP aggregate is written to, org collection first (Tyk's order). Unlike the
    REST aggregate, Tyk does not skip records without an org id: they go to the collection
    named by the bare prefix, as here."""
    org = ORG_COLLECTION_PREFIX + org_id
    return (org, MIXED_COLLECTION) if use_mixed_collection else (org,)


def mcp_filter(api_id: str, agg: MCPAggregate) -> dict[str, Any]:
    return {"orgid": agg.base.org_id, "timestamp": agg.base.timestamp, "owner_apiid": api_id}


def mcp_change(agg: MCPAggregate) -> dict[str, dict[str, Any]]:
    """Step-1 update of one MCP aggregate."""
    update = as_change(agg.base)
    inc, set_, max_ = update["$inc"], update["$set"], update["$max"]
    for dimension, value, c in agg.graph_dimensions():
        p = f"{dimension}.{value}."
        inc[p + "hits"] = c.hits
        inc[p + "errortotal"] = c.error_total
        inc[p + "success"] = c.success
        inc[p + "totalrequesttime"] = float(c.total_request_time)
        inc[p + "totallatency"] = c.total_latency
        inc[p + "totalupstreamlatency"] = c.total_upstream_latency
        for code, n in c.error_map.items():
            inc[f"{p}errormap.{code}"] = n
        set_[p + "identifier"] = c.identifier
        set_[p + "humanidentifier"] = c.human_identifier
        set_[p + "lasttime"] = c.last_time
        max_[p + "maxlatency"] = c.max_latency
        max_[p + "maxupstreamlatency"] = c.max_upstream_latency
        if c.hits != c.error_total:
            min_ = update.setdefault("$min", {})
            min_[p + "minlatency"] = c.min_latency
            min_[p + "minupstreamlatency"] = c.min_upstream_latency
    return update
