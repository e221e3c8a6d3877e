"""A large aggregate's Mongo updates cut into parts of a bounded number of operator paths. Pure code.

Why: a Mongo-wire server applies an update path by path, and FerretDB does so at a cost that
grows with the square of the paths in one update (on a 1 MB document: 1,000 paths 0.2 s, 4,000
paths 2.4 s, 15,000 paths 34 s). An org-hour with ~1,000 endpoints makes a step-1 update of
~70,000 paths and a step-2 update of tens of thousands more: one update of that size does not
finish in 16 minutes, while the same paths in parts of 1,000 take seconds.

* :func:`change_parts` — the step-1 update (``as_change``) as parts of at most ``max_paths`` paths,
  grouped by dimension in a fixed order (dimensions in Tyk's order, keys sorted, total last), so
  the same aggregate always gives the same parts: the part markers of the exactly-once ledger
  (``pump.sinks.mongo.upsert``) depend on it. A counter is never cut across parts (its ``$inc``,
  ``$set``, ``$max`` and ``$min`` stay together); every part carries the document-level fields,
  so whichever part creates the document gives it its identity.
* :func:`set_parts` — the step-2 ``$set`` (``as_time_update``) in parts; each ``lists.*`` array
  weighs one path per entry.
* :func:`problems` — what a server would refuse in a path, checked before the first part is
  sent, so a refused batch writes nothing (as the single update it replaces).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pump.aggregate.model import DIMENSIONS, NESTED_DIMENSIONS, TOTAL_DIMENSION, TOTAL_VALUE, Counter, OrgAggregate
from pump.aggregate.mongo_update import _add_counter, _prefix, document_fields

#: Default bound on the operator paths of one update (see the module docstring for the figures).
MAX_UPDATE_PATHS = 4000

Update = dict[str, dict[str, Any]]


def count_paths(update: Update) -> int:
    """Operator paths of an update document (``$push`` of the ledger counts as one)."""
    return sum(len(fields) for fields in update.values())


def units(agg: OrgAggregate, skip: frozenset[str] | set[str] = frozenset()) -> Iterator[tuple[str, Counter]]:
    """``(path prefix, counter)`` of every counter, in the fixed order of :func:`change_parts`;
    prefixes in ``skip`` (already written by this process) are left out."""
    for name in DIMENSIONS:
        table = getattr(agg, name)
        if name in NESTED_DIMENSIONS:
            pairs = [(f"{outer}.{key}", c) for outer in sorted(table) for key, c in sorted(table[outer].items())]
        else:
            pairs = sorted(table.items())
        for value, counter in pairs:
            prefix = _prefix(name, value)
            if prefix not in skip:
                yield prefix, counter
    prefix = _prefix(TOTAL_DIMENSION, TOTAL_VALUE)
    if prefix not in skip:
        yield prefix, agg.total


def change_parts(
    agg: OrgAggregate, max_paths: int = MAX_UPDATE_PATHS, skip: frozenset[str] | set[str] = frozenset()
) -> list[tuple[list[str], Update]]:
    """The step-1 update of ``agg`` as ``(counter prefixes, update)`` parts of at most
    ``max_paths`` paths (a single counter with more travels alone). Together the parts hold
    exactly the paths of ``as_change(agg)`` (minus the counters in ``skip``)."""
    head = document_fields(agg)
    parts: list[tuple[list[str], Update]] = []
    prefixes: list[str] = []
    ops: Update = _empty()
    size = 0
    for prefix, counter in units(agg, skip):
        one = _empty()
        _add_counter(prefix, counter, one["$inc"], one["$set"], one["$max"], one["$min"])
        n = count_paths(one)
        if prefixes and size + n > max_paths:
            parts.append((prefixes, _finish(ops, head)))
            prefixes, ops, size = [], _empty(), 0
        prefixes.append(prefix)
        for op, fields in one.items():
            ops[op].update(fields)
        size += n
    if prefixes:
        parts.append((prefixes, _finish(ops, head)))
    return parts


def _empty() -> Update:
    return {"$inc": {}, "$set": {}, "$max": {}, "$min": {}}


def _finish(ops: Update, head: dict[str, Any]) -> Update:
    ops["$set"].update(head)
    if not ops["$min"]:
        del ops["$min"]
    return ops


def set_parts(fields: dict[str, Any], max_paths: int = MAX_UPDATE_PATHS) -> list[dict[str, Any]]:
    """A ``$set`` cut into parts of at most ``max_paths`` weight, in the order given; a list
    weighs one per entry (an array larger than the bound travels alone)."""
    parts: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    weight = 0
    for path, value in fields.items():
        w = max(1, len(value)) if isinstance(value, list) else 1
        if current and weight + w > max_paths:
            parts.append(current)
            current, weight = {}, 0
        current[path] = value
        weight += w
    if current:
        parts.append(current)
    return parts


def problems(update: Update) -> str:
    """Why a server would refuse a path of ``update`` ("" if none would): a field name that is
    empty or starts with ``$`` (MongoDB's codes 56 and 52), or two paths of which one is a prefix
    of the other (code 40, ConflictingUpdateOperators) — checked over the whole update before any
    part of it is sent, since parts applied before a refused one could not be taken back."""
    paths = [path for fields in update.values() for path in fields]
    seen: set[str] = set()
    for path in paths:
        if path in seen:
            return f"updating the path {path[:200]!r} would create a conflict at {path[:200]!r}"
        seen.add(path)
        for segment in path.split("."):
            if not segment:
                return f"empty field name in update path {path[:200]!r}"
            if segment.startswith("$"):
                return f"the dollar ($) prefixed field {segment[:100]!r} in {path[:200]!r} is not valid"
    for path in paths:
        cut = path.rfind(".")
        while cut > 0:
            if path[:cut] in seen:
                return f"updating the path {path[:200]!r} would create a conflict at {path[:cut][:200]!r}"
            cut = path.rfind(".", 0, cut)
    return ""
