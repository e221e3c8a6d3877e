"""Merging the aggregates of several batches for one document (``publish_interval`` of
``mongo-pump-aggregate``): one update instead of one per batch, with the same result.

The rules are those of the Mongo step-1 update applied batch after batch (``mongo_update.
as_change``): additive counters and error maps add up; ``max*`` take the larger; ``min*`` the
smaller over the batches that had a non-error hit (a batch of errors only sends no ``$min``);
identifiers, ``lasttime`` and the connection/byte counters (which Tyk ``$set``-s) are the last
batch's. Averages are recomputed from the totals. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from copy import copy

from pump.aggregate.model import DIMENSIONS, NESTED_DIMENSIONS, Counter, OrgAggregate


def merge_counter(a: Counter, b: Counter) -> Counter:
    """``a`` then ``b`` (a new counter; neither is changed)."""
    out = copy(a)
    out.error_map = dict(a.error_map)
    a_min = a.hits != a.error_total
    b_min = b.hits != b.error_total
    if b_min and (not a_min or b.min_latency < a.min_latency):
        out.min_latency = b.min_latency
    if b_min and (not a_min or b.min_upstream_latency < a.min_upstream_latency):
        out.min_upstream_latency = b.min_upstream_latency
    out.max_latency = max(a.max_latency, b.max_latency)
    out.max_upstream_latency = max(a.max_upstream_latency, b.max_upstream_latency)
    out.hits = a.hits + b.hits
    out.success = a.success + b.success
    out.error_total = a.error_total + b.error_total
    out.total_request_time = a.total_request_time + b.total_request_time
    out.total_latency = a.total_latency + b.total_latency
    out.total_upstream_latency = a.total_upstream_latency + b.total_upstream_latency
    for code, n in b.error_map.items():
        out.error_map[code] = out.error_map.get(code, 0) + n
    out.identifier = b.identifier
    out.human_identifier = b.human_identifier
    out.last_time = b.last_time
    out.open_connections = b.open_connections
    out.closed_connections = b.closed_connections
    out.bytes_in = b.bytes_in
    out.bytes_out = b.bytes_out
    out.refresh_averages()
    return out


def _merge_table(a: dict[str, Counter], b: dict[str, Counter]) -> dict[str, Counter]:
    out = dict(a)
    for key, counter in b.items():
        old = out.get(key)
        out[key] = counter if old is None else merge_counter(old, counter)
    return out


def merge_aggregates(parts: Sequence[OrgAggregate]) -> OrgAggregate:
    """The aggregates of one org and bucket from several batches, in batch order, as one."""
    first = parts[0]
    out = copy(first)
    for part in parts[1:]:
        for name in DIMENSIONS:
            mine, theirs = getattr(out, name), getattr(part, name)
            if name in NESTED_DIMENSIONS:
                merged = dict(mine)
                for outer, inner in theirs.items():
                    merged[outer] = _merge_table(merged.get(outer, {}), inner)
                setattr(out, name, merged)
            else:
                setattr(out, name, _merge_table(mine, theirs))
        extra = dict(out.extra)
        for name, table in part.extra.items():
            extra[name] = _merge_table(extra.get(name, {}), table)
        out.extra = extra
        out.total = merge_counter(out.total, part.total)
        out.last_time = part.last_time
        out.expire_at = part.expire_at  # $set by each batch: the last one's stays
    return out
