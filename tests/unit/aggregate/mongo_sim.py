"""A tiny in-memory stand-in for MongoDB's update operators, for pure tests of the Mongo updates.

Implements just what the aggregate updates use — ``$inc``, ``$set``, ``$max``, ``$min`` on dotted
paths, creating intermediate documents — plus an upserting collection keyed by the filter, so the
two-step write (``as_change`` then ``as_time_update`` on the returned document) can be replayed
exactly as a sink would run it.
"""

from __future__ import annotations

import copy
from typing import Any

from pump.aggregate import as_change, as_time_update, upsert_filter
from pump.aggregate.model import OrgAggregate


def _parent(doc: dict[str, Any], path: str) -> tuple[dict[str, Any], str]:
    parts = path.split(".")
    node = doc
    for part in parts[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = node[part] = {}
        node = nxt
    return node, parts[-1]


def apply_update(doc: dict[str, Any], update: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Apply ``$set``/``$inc``/``$max``/``$min`` to ``doc`` in place and return it."""
    for op, fields in update.items():
        for path, value in fields.items():
            node, leaf = _parent(doc, path)
            if op == "$set":
                node[leaf] = copy.deepcopy(value)
            elif op == "$inc":
                node[leaf] = node.get(leaf, 0) + value
            elif op == "$max":
                node[leaf] = value if leaf not in node else max(node[leaf], value)
            elif op == "$min":
                node[leaf] = value if leaf not in node else min(node[leaf], value)
            else:  # pragma: no cover - the helper only needs these four
                raise ValueError(f"unsupported operator {op}")
    return doc


class FakeCollection:
    """Documents keyed by ``(orgid, timestamp)``; ``find_one_and_update`` with upsert, return after."""

    def __init__(self) -> None:
        self.docs: dict[tuple[Any, ...], dict[str, Any]] = {}

    def find_one_and_update(self, query: dict[str, Any], update: dict[str, dict[str, Any]]) -> dict[str, Any]:
        key = tuple(sorted(query.items()))
        doc = self.docs.get(key)
        if doc is None:
            doc = self.docs[key] = copy.deepcopy(query)
        apply_update(doc, update)
        return copy.deepcopy(doc)


def write_aggregate(collection: FakeCollection, agg: OrgAggregate) -> dict[str, Any]:
    """The Mongo aggregate sink's two-step write; returns the document after step 2."""
    query = upsert_filter(agg)
    merged = collection.find_one_and_update(query, as_change(agg))
    return collection.find_one_and_update(query, as_time_update(merged))
