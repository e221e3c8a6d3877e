"""Aggregates → the two Mongo update documents of the aggregate pump (§3.4).

Writing one org aggregate is two ``find_one_and_update(filter, update, upsert=True,
return_document=AFTER)`` calls on the same filter (:func:`upsert_filter`):

1. :func:`as_change` — ``$inc`` the additive counters, ``$max``/``$min`` the extremes and ``$set``
   identifiers, times and (as Tyk does) the connection/byte counters. Additive updates are what
   make concurrent pumps and repeated batches merge instead of overwrite.
2. :func:`as_time_update` on the document step 1 returned — averages, ``errorlist`` and the
   ``lists.*`` arrays are recomputed from the *merged* totals, because an average cannot be
   ``$inc``-ed.

Paths are built exactly like Tyk's: ``<dimension>.<key>.<field>``, ``total.<field>``; only
endpoint keys and tags were made dot-free by the engine, so a dot in an API key or OAuth id still
nests (Tyk-compatible) and ``$`` is never escaped.

``lists.*`` entries carry ``requesttime`` as Tyk stores it by default: the average as of the
*previous* write (0.0 after the first). Go builds the entries from the decoded returned document,
whose ``requesttime`` the previous step 2 set, and ``$set``-s the new average only beside them.
Nothing shows Tyk Dashboard ignoring the lists' value, so parity is the default;
``lists_request_time: average`` (:data:`LIST_REQUEST_TIME_AVERAGE`) stores the current average.
Given the step-1 increments (:func:`batch_increments`), the previous average is computed from the
merged totals minus this batch's increments rather than read back, so re-running step 2 after a
crash (the sink does) writes the same value again.

Deliberate differences from Tyk, making the output a pure function of the input: ``$min`` is
omitted when empty (older MongoDB servers reject an empty operator), and ``lists.*`` entries are in
the code-point order of their dimension key (Go's are in map order, i.e. random; nothing can
depend on it).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from pump.aggregate.buckets import minute_floor
from pump.aggregate.extra import EXTRA_DIMENSIONS
from pump.aggregate.model import DIMENSIONS, Counter, OrgAggregate, error_list, iter_dimensions
from pump.gotime import ZERO_TIME

#: The mixed collection every org's aggregates also go to with ``use_mixed_collection``.
MIXED_COLLECTION = "tyk_analytics_aggregates"
ORG_COLLECTION_PREFIX = "z_tyk_analyticz_aggregate_"

#: ``threshold_len_tag_list`` when unset/0; -1 disables the warning.
DEFAULT_TAG_THRESHOLD = 1000
#: How many common tag prefixes the warning lists.
COMMON_TAGS_COUNT = 5

#: Names accepted by ``ignore_aggregations`` (Go field names and bson names) → dimension.
DISCARD_ALIASES: dict[str, str] = {
    "APIID": "apiid",
    "Errors": "errors",
    "Versions": "versions",
    "APIKeys": "apikeys",
    "OauthIDs": "oauthids",
    "Geo": "geo",
    "Tags": "tags",
    "Endpoints": "endpoints",
    "KeyEndpoint": "keyendpoints",
    "OauthEndpoint": "oauthendpoints",
    "ApiEndpoint": "apiendpoints",
    **{name: name for name in DIMENSIONS},
}

#: Dimensions with a flat ``lists.<dim>`` array, in Tyk's order; the nested ones get one array
#: per outer key and ``apiendpoints`` comes after them.
_FLAT_LIST_DIMENSIONS = ("apiid", "errors", "versions", "apikeys", "oauthids", "geo", "tags", "endpoints")
_NESTED_LIST_DIMENSIONS = ("keyendpoints", "oauthendpoints")
#: ``lists_request_time`` values: Tyk's stale value (default) or the counter's current average.
LIST_REQUEST_TIME_TYK = "tyk"
LIST_REQUEST_TIME_AVERAGE = "average"
#: The dimensions Tyk's MCP aggregate adds (``lists.methods``, … are recomputed like the others).
MCP_DIMENSIONS = ("methods", "primitives", "names")


# --------------------------------------------------------------------------- collections / filter


def org_collection(org_id: str) -> str:
    """The per-org collection ``z_tyk_analyticz_aggregate_<OrgID>``."""
    if not org_id:
        raise ValueError("OrgID cannot be empty")
    return ORG_COLLECTION_PREFIX + org_id


def collection_names(org_id: str, use_mixed_collection: bool) -> tuple[str, ...]:
    """Collections one aggregate is written to, org collection first (Tyk's order)."""
    org = org_collection(org_id)
    return (org, MIXED_COLLECTION) if use_mixed_collection else (org,)


def upsert_filter(agg: OrgAggregate) -> dict[str, Any]:
    """The filter both updates use: one document per org and bucket."""
    return {"orgid": agg.org_id, "timestamp": agg.timestamp}


# --------------------------------------------------------------------------- ignore_aggregations


def unknown_aggregation_names(names: Iterable[str]) -> list[str]:
    """Entries of ``ignore_aggregations`` that name no dimension (Tyk logs and skips them)."""
    return [n for n in names if n not in DISCARD_ALIASES]


def discard_aggregations(agg: OrgAggregate, names: Iterable[str]) -> OrgAggregate:
    """A copy of ``agg`` whose named dimensions are empty (``ignore_aggregations``).

    A shallow copy rather than Tyk's in-place reset, so the caller's aggregate (which may be
    retried or written elsewhere) is untouched; unknown names are ignored — see
    :func:`unknown_aggregation_names`.
    """
    emptied: dict[str, Any] = {DISCARD_ALIASES[n]: {} for n in names if n in DISCARD_ALIASES}
    return replace(agg, **emptied) if emptied else agg


# --------------------------------------------------------------------------- step 1: AsChange


def counter_change(parent: str, unit: str, counter: Counter) -> dict[str, dict[str, Any]]:
    """The update operators for one counter at ``<parent>.<unit>.`` (``<unit>.`` if no parent).

    Tyk's ``generateBSONFromProperty``; ``$min`` appears only if the counter has a non-error hit,
    so an all-error batch cannot drag a stored minimum down to an error's latency.
    """
    ops: dict[str, dict[str, Any]] = {"$inc": {}, "$set": {}, "$max": {}, "$min": {}}
    _add_counter(_prefix(parent, unit), counter, ops["$inc"], ops["$set"], ops["$max"], ops["$min"])
    if not ops["$min"]:
        del ops["$min"]
    return ops


def as_change(agg: OrgAggregate) -> dict[str, dict[str, Any]]:
    """Step-1 update: every dimension counter and the total, plus the document-level fields.

    ``timestamp`` is the bucket (minute precision) and ``timeid`` is derived from it, so the
    document's identity fields agree with the filter.
    """
    inc: dict[str, Any] = {}
    set_: dict[str, Any] = {}
    max_: dict[str, Any] = {}
    min_: dict[str, Any] = {}
    for dimension, value, counter in iter_dimensions(agg):
        _add_counter(_prefix(dimension, value), counter, inc, set_, max_, min_)
    set_.update(document_fields(agg))
    update: dict[str, dict[str, Any]] = {"$inc": inc, "$set": set_, "$max": max_}
    if min_:
        update["$min"] = min_
    return update


def document_fields(agg: OrgAggregate) -> dict[str, Any]:
    """The document-level ``$set`` fields: the bucket, its ``timeid``, expiry and last time."""
    bucket = minute_floor(agg.timestamp)
    return {
        "timestamp": bucket,
        "expireAt": agg.expire_at,
        "timeid.year": bucket.year,
        "timeid.month": bucket.month,
        "timeid.day": bucket.day,
        "timeid.hour": bucket.hour,
        "lasttime": agg.last_time,
    }


def _prefix(parent: str, unit: str) -> str:
    return f"{parent}.{unit}." if parent else f"{unit}."


def _add_counter(
    p: str,
    c: Counter,
    inc: dict[str, Any],
    set_: dict[str, Any],
    max_: dict[str, Any],
    min_: dict[str, Any],
) -> None:
    inc[p + "hits"] = c.hits
    inc[p + "success"] = c.success
    inc[p + "errortotal"] = c.error_total
    for code, count in c.error_map.items():
        inc[f"{p}errormap.{code}"] = count
    inc[p + "totalrequesttime"] = float(c.total_request_time)
    inc[p + "totalupstreamlatency"] = c.total_upstream_latency
    inc[p + "totallatency"] = c.total_latency
    set_[p + "identifier"] = c.identifier
    set_[p + "humanidentifier"] = c.human_identifier
    set_[p + "lasttime"] = c.last_time
    # Tyk $set-s these (the last batch wins) where SQL sums them; kept for compatibility (§10).
    set_[p + "openconnections"] = c.open_connections
    set_[p + "closedconnections"] = c.closed_connections
    set_[p + "bytesin"] = c.bytes_in
    set_[p + "bytesout"] = c.bytes_out
    max_[p + "maxlatency"] = c.max_latency
    max_[p + "maxupstreamlatency"] = c.max_upstream_latency
    if c.hits != c.error_total:
        min_[p + "minlatency"] = c.min_latency
        min_[p + "minupstreamlatency"] = c.min_upstream_latency


# --------------------------------------------------------------------------- step 2: AsTimeUpdate


#: ``<counter path>.`` → (hits, totalrequesttime) this batch ``$inc``-ed (:func:`batch_increments`).
Increments = Mapping[str, tuple[float, float]]


def batch_increments(change: Mapping[str, Any]) -> dict[str, tuple[float, float]]:
    """Per counter prefix (``apiid.<id>.``), the hits and request time a step-1 update adds."""
    inc = change.get("$inc") or {}
    out: dict[str, tuple[float, float]] = {}
    for path, hits in inc.items():
        if path.endswith(".hits"):
            prefix = path[: -len("hits")]
            out[prefix] = (hits, inc.get(prefix + "totalrequesttime", 0.0))
    return out


def as_time_update(
    stored: Mapping[str, Any],
    lists_request_time: str = LIST_REQUEST_TIME_TYK,
    increments: Increments | None = None,
) -> dict[str, dict[str, Any]]:
    """Step-2 update computed from the document step 1 returned.

    For every counter in the stored document: ``requesttime``, ``latency``, ``upstreamlatency``
    (total / hits, 0 without hits) and ``errorlist``; plus ``lists.<dim>`` arrays of the full
    counters (``lists.keyendpoints.<apikey>`` / ``lists.oauthendpoints.<oauthid>`` per outer key)
    and the total's averages. Works on whatever the document holds, including dimensions other
    pumps wrote, so ``ignore_aggregations`` in one pump never hides another pump's data.
    ``lists_request_time`` and ``increments``: see the module docstring; without ``increments``
    the stored ``requesttime`` is used, as Go does.
    """
    if lists_request_time not in (LIST_REQUEST_TIME_TYK, LIST_REQUEST_TIME_AVERAGE):
        raise ValueError(f"lists_request_time must be {LIST_REQUEST_TIME_TYK!r} or {LIST_REQUEST_TIME_AVERAGE!r}")
    stale = _Stale(increments) if lists_request_time == LIST_REQUEST_TIME_TYK else None
    set_: dict[str, Any] = {}
    for dimension in _FLAT_LIST_DIMENSIONS:
        set_[f"lists.{dimension}"] = _recompute(dimension, stored.get(dimension), set_, stale)
    for dimension in _NESTED_LIST_DIMENSIONS:
        for outer, inner in _items(stored.get(dimension)):
            set_[f"lists.{dimension}.{outer}"] = _recompute(f"{dimension}.{outer}", inner, set_, stale)
    set_["lists.apiendpoints"] = _recompute("apiendpoints", stored.get("apiendpoints"), set_, stale)
    # ours, opt-in, and the MCP aggregate's (mongo-mcp-aggregate): only in documents that have them
    for dimension in (*EXTRA_DIMENSIONS, *MCP_DIMENSIONS):
        if dimension in stored:
            set_[f"lists.{dimension}"] = _recompute(dimension, stored.get(dimension), set_, stale)
    total = stored.get("total")
    _set_averages("total.", counter_document(total if isinstance(total, Mapping) else {}), set_)
    return {"$set": set_}


def _items(value: Any) -> list[tuple[str, Any]]:
    return list(value.items()) if isinstance(value, Mapping) else []


class _Stale:
    """Tyk's ``lists.*`` requesttime: the average before this batch (see the module docstring)."""

    def __init__(self, increments: Increments | None) -> None:
        self.increments = increments

    def request_time(self, prefix: str, raw: Mapping[str, Any]) -> float:
        if self.increments is None:
            return _number(raw.get("requesttime"))
        hits, total = self.increments.get(prefix, (0, 0.0))
        before = _number(raw.get("hits")) - hits
        return (_number(raw.get("totalrequesttime")) - total) / before if before > 0 else 0.0


def _recompute(parent: str, counters: Any, set_: dict[str, Any], stale: _Stale | None) -> list[dict[str, Any]]:
    """One ``lists.*`` array, in key order; ``stale``: entries get Tyk's previous average."""
    entries: list[dict[str, Any]] = []
    for key, raw in sorted(_items(counters)):
        if not isinstance(raw, Mapping):
            continue
        doc = counter_document(raw)
        prefix = f"{parent}.{key}."
        _set_averages(prefix, doc, set_)
        if stale is not None:
            doc["requesttime"] = stale.request_time(prefix, raw)
        entries.append(doc)
    return entries


def _number(value: Any) -> float:
    """A stored number as Go decodes it into a numeric field (anything else: Go's zero)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _set_averages(p: str, doc: Mapping[str, Any], set_: dict[str, Any]) -> None:
    set_[p + "errorlist"] = doc["errorlist"]
    set_[p + "requesttime"] = doc["requesttime"]
    set_[p + "latency"] = doc["latency"]
    set_[p + "upstreamlatency"] = doc["upstreamlatency"]


def counter_document(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A stored counter in Tyk's full BSON shape, with averages and error list recomputed.

    Missing fields take Go's zero values, so list entries always have the same keys in Go's
    field order whatever subset the stored document had.
    """
    hits = raw.get("hits") or 0
    total_rt = raw.get("totalrequesttime") or 0
    total_up = raw.get("totalupstreamlatency") or 0
    total_lat = raw.get("totallatency") or 0
    emap = raw.get("errormap")
    emap = dict(emap) if isinstance(emap, Mapping) else {}
    return {
        "hits": hits,
        "success": raw.get("success") or 0,
        "errortotal": raw.get("errortotal") or 0,
        "requesttime": total_rt / hits if hits else 0.0,
        "totalrequesttime": float(total_rt),
        "identifier": raw.get("identifier") or "",
        "humanidentifier": raw.get("humanidentifier") or "",
        "lasttime": raw.get("lasttime") or ZERO_TIME,
        "openconnections": raw.get("openconnections") or 0,
        "closedconnections": raw.get("closedconnections") or 0,
        "bytesin": raw.get("bytesin") or 0,
        "bytesout": raw.get("bytesout") or 0,
        "maxupstreamlatency": raw.get("maxupstreamlatency") or 0,
        "minupstreamlatency": raw.get("minupstreamlatency") or 0,
        "totalupstreamlatency": total_up,
        "upstreamlatency": total_up / hits if hits else 0.0,
        "maxlatency": raw.get("maxlatency") or 0,
        "minlatency": raw.get("minlatency") or 0,
        "totallatency": total_lat,
        "latency": total_lat / hits if hits else 0.0,
        "errormap": emap,
        "errorlist": [{"code": code, "count": count} for code, count in error_list(emap)],
    }


# --------------------------------------------------------------------------- tag-count warning


def tag_threshold(configured: int | None) -> int:
    """``threshold_len_tag_list`` after defaulting (unset/0 → 1000; -1 = disabled)."""
    return configured if configured else DEFAULT_TAG_THRESHOLD


def tag_count_warning(stored: Mapping[str, Any], threshold: int | None) -> str | None:
    """Tyk's "too many tags" warning for a stored aggregate document, or None.

    Too many distinct tags (typically from ``tag_headers`` such as request ids) is what grows
    aggregate documents towards Mongo's 16 MB limit; the message names the most common prefixes
    so they can be added to ``ignore_tag_prefix_list``.
    """
    limit = tag_threshold(threshold)
    tags = stored.get("tags")
    if limit == -1 or not isinstance(tags, Mapping) or len(tags) <= limit:
        return None
    prefixes = common_tag_prefixes(list(tags), COMMON_TAGS_COUNT)
    return (
        f"WARNING: Found more than {limit} tag entries per document, which may cause performance "
        f"issues with aggregate logs. List of most common tag-prefix: [{', '.join(prefixes)}]. "
        "You can ignore these tags using ignore_tag_prefix_list option"
    )


def common_tag_prefixes(tags: Iterable[str], limit: int = COMMON_TAGS_COUNT) -> list[str]:
    """The ``limit`` prefixes shared by the most pairs of tags, most common first.

    Same counting as Tyk (each pair of tags counts once for its longest common prefix, pairs with
    nothing in common are ignored) but computed over the sorted tags in O(n log n) instead of
    Tyk's O(n²) pairwise loop, which would stall on the very documents this warning is about.
    Ties are broken alphabetically; prefixes are whole characters (Go works on bytes).
    """
    uniq = sorted(set(tags))
    if len(uniq) <= 1:
        return uniq[:limit]
    counts: dict[str, int] = {}
    stack = [(0, len(uniq))]
    while stack:
        lo, hi = stack.pop()
        depth = _common_prefix_len(uniq[lo], uniq[hi - 1])
        prefix = uniq[lo][:depth]
        n = hi - lo
        pairs = n * (n - 1) // 2
        i = lo + 1 if len(uniq[lo]) == depth else lo  # a tag equal to the prefix sorts first
        while i < hi:
            j = _group_end(uniq, prefix + uniq[i][depth], i, hi)
            size = j - i
            if size > 1:
                pairs -= size * (size - 1) // 2
                stack.append((i, j))
            i = j
        if depth and pairs:
            counts[prefix] = counts.get(prefix, 0) + pairs
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [p for p, _ in ranked[:limit]]


def _common_prefix_len(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _group_end(sorted_tags: list[str], prefix: str, lo: int, hi: int) -> int:
    """End of the run of ``sorted_tags[lo:hi]`` starting with ``prefix`` (which ``[lo]`` does)."""
    last = ord(prefix[-1])
    if last >= 0x10FFFF:
        j = lo
        while j < hi and sorted_tags[j].startswith(prefix):
            j += 1
        return j
    return bisect.bisect_left(sorted_tags, prefix[:-1] + chr(last + 1), lo, hi)
