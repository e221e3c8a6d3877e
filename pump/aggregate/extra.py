"""Opt-in aggregate dimensions of ours: ``eventkinds``, ``browsers``, ``platforms``.

A pump's ``extra_dimensions`` list turns them on (``sql_aggregate``, ``mongo-pump-aggregate``).
Each is one more dimension with a full :class:`~pump.aggregate.model.Counter` per value, written
exactly like Tyk's own dimensions, so neither store changes shape:

* SQL: more rows in ``tyk_aggregated`` — ``dimension`` ``eventkinds``, ``dimension_value``
  ``request``/``fault``/``throttled`` — with the usual columns. No column is added: Tyk's
  dashboard reads the table by dimension name and never sees the new ones.
* Mongo: one more top-level map in the aggregate document (``eventkinds.fault.hits``…) and its
  ``lists.eventkinds`` array; Tyk's readers decode into structs and ignore unknown keys.

So the per-kind counts WSO2 keeps (``fault_count``, ``throttled_count``) are the ``hits`` of the
``eventkinds``/``fault`` and ``eventkinds``/``throttled`` counters of each bucket, with their
latencies, bytes and error codes beside them. Kinds come from :mod:`pump.transforms.eventkind`,
browsers and platforms (operating systems, WSO2's ``ApiUserBrowserAgg``) from
:mod:`pump.transforms.useragent`; records without a user agent add nothing to those two.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pump.record import Record
from pump.transforms.eventkind import event_kind
from pump.transforms.useragent import parse_user_agent

#: The extra dimensions, in the order they are written (after Tyk's, before the total).
EXTRA_DIMENSIONS: tuple[str, ...] = ("eventkinds", "browsers", "platforms")


def _browser(r: Record) -> str:
    return parse_user_agent(r.user_agent).browser


def _platform(r: Record) -> str:
    return parse_user_agent(r.user_agent).os


#: Dimension → the key of a record in it ("" = the record is not counted there).
KEY_OF: dict[str, Callable[[Record], str]] = {
    "eventkinds": event_kind,
    "browsers": _browser,
    "platforms": _platform,
}


def check_extra(names: Sequence[str]) -> list[str]:
    """The names that are not extra dimensions."""
    return [n for n in names if n not in KEY_OF]


def ordered(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` in :data:`EXTRA_DIMENSIONS` order, without repeats (the output order is fixed)."""
    wanted = set(names)
    return tuple(n for n in EXTRA_DIMENSIONS if n in wanted)
