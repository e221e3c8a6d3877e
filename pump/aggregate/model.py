"""Typed shapes of Tyk's analytics aggregates (tyk-pump.md §3.2).

One :class:`OrgAggregate` holds everything one batch contributed to one organisation's time
bucket: a :class:`Counter` per value of every dimension plus the org-wide ``total``. The same
object feeds the Mongo update documents (``mongo_update``) and the SQL rows (``sql_rows``), so
the dimension names, their order and the counter field names live here, once.

Python attributes are snake_case; the names the stores use are explicit mappings
(:data:`BSON_NAMES`, :data:`SQL_NAMES`) rather than derived by string mangling, because the two
stores disagree (``errortotal`` vs ``counter_error``) and a silent mismatch would corrupt data.

Classes use ``slots`` because a busy batch creates tens of thousands of counters.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from pump.gotime import ZERO_TIME

#: Dimension names, in Tyk's order (§3.3). They are both the ``OrgAggregate`` attribute names, the
#: Mongo document keys and the SQL ``dimension`` column values.
DIMENSIONS: tuple[str, ...] = (
    "apiid",
    "errors",
    "versions",
    "apikeys",
    "oauthids",
    "geo",
    "tags",
    "endpoints",
    "keyendpoints",
    "oauthendpoints",
    "apiendpoints",
)

#: Dimensions keyed twice (API key / OAuth id → endpoint hash → counter).
NESTED_DIMENSIONS: frozenset[str] = frozenset({"keyendpoints", "oauthendpoints"})

#: How the org-wide counter appears among the dimensions: SQL ``dimension`` "" and
#: ``dimension_value`` "total"; Mongo key ``total``.
TOTAL_DIMENSION = ""
TOTAL_VALUE = "total"

#: Counter attributes in Go struct order (the order Tyk's BSON/SQL encoders walk them).
COUNTER_FIELDS: tuple[str, ...] = (
    "hits",
    "success",
    "error_total",
    "request_time",
    "total_request_time",
    "identifier",
    "human_identifier",
    "last_time",
    "open_connections",
    "closed_connections",
    "bytes_in",
    "bytes_out",
    "max_upstream_latency",
    "min_upstream_latency",
    "total_upstream_latency",
    "upstream_latency",
    "max_latency",
    "min_latency",
    "total_latency",
    "latency",
)

#: Python attribute → Mongo field (Go field name lower-cased by the mgocompat codec).
BSON_NAMES: dict[str, str] = {
    "hits": "hits",
    "success": "success",
    "error_total": "errortotal",
    "request_time": "requesttime",
    "total_request_time": "totalrequesttime",
    "identifier": "identifier",
    "human_identifier": "humanidentifier",
    "last_time": "lasttime",
    "open_connections": "openconnections",
    "closed_connections": "closedconnections",
    "bytes_in": "bytesin",
    "bytes_out": "bytesout",
    "max_upstream_latency": "maxupstreamlatency",
    "min_upstream_latency": "minupstreamlatency",
    "total_upstream_latency": "totalupstreamlatency",
    "upstream_latency": "upstreamlatency",
    "max_latency": "maxlatency",
    "min_latency": "minlatency",
    "total_latency": "totallatency",
    "latency": "latency",
    "error_map": "errormap",
    "error_list": "errorlist",
}

#: Python attribute → SQL column of ``tyk_aggregated`` (``counter_`` + the Go json tag). The error
#: map/list have no SQL column: Tyk folds them into the ``code_*`` columns instead.
SQL_NAMES: dict[str, str] = {
    "hits": "counter_hits",
    "success": "counter_success",
    "error_total": "counter_error",
    "request_time": "counter_request_time",
    "total_request_time": "counter_total_request_time",
    "identifier": "counter_identifier",
    "human_identifier": "counter_human_identifier",
    "last_time": "counter_last_time",
    "open_connections": "counter_open_connections",
    "closed_connections": "counter_closed_connections",
    "bytes_in": "counter_bytes_in",
    "bytes_out": "counter_bytes_out",
    "max_upstream_latency": "counter_max_upstream_latency",
    "min_upstream_latency": "counter_min_upstream_latency",
    "total_upstream_latency": "counter_total_upstream_latency",
    "upstream_latency": "counter_upstream_latency",
    "max_latency": "counter_max_latency",
    "min_latency": "counter_min_latency",
    "total_latency": "counter_total_latency",
    "latency": "counter_latency",
}


def error_list(error_map: dict[str, int]) -> list[tuple[str, int]]:
    """``ErrorMap`` as Tyk's ``ErrorList``: ``(code, count)`` pairs sorted by code.

    Sorted (numerically for the usual 3-digit codes) so the stored list is the same every time the
    same data is written, which Go's map iteration does not guarantee.
    """
    return sorted(error_map.items(), key=_code_order)


def _code_order(item: tuple[str, int]) -> tuple[int, str]:
    return (len(item[0]), item[0])


@dataclass(slots=True)
class Counter:
    """Counts for one dimension value (or the org total) within one bucket.

    ``request_time``, ``latency`` and ``upstream_latency`` are averages and are only meaningful
    after :meth:`refresh_averages` (the engine calls it once per counter at the end of a batch
    rather than per record). ``min_*`` are 0 while ``hits`` is 0.
    """

    hits: int = 0
    success: int = 0
    error_total: int = 0
    request_time: float = 0.0
    total_request_time: float = 0.0
    identifier: str = ""
    human_identifier: str = ""
    last_time: datetime = ZERO_TIME
    open_connections: int = 0
    closed_connections: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    max_upstream_latency: int = 0
    min_upstream_latency: int = 0
    total_upstream_latency: int = 0
    upstream_latency: float = 0.0
    max_latency: int = 0
    min_latency: int = 0
    total_latency: int = 0
    latency: float = 0.0
    error_map: dict[str, int] = field(default_factory=dict)

    def refresh_averages(self) -> None:
        """Recompute the three averages from the totals (all 0 when there are no hits)."""
        hits = self.hits
        if hits > 0:
            self.request_time = self.total_request_time / hits
            self.latency = self.total_latency / hits
            self.upstream_latency = self.total_upstream_latency / hits
        else:
            self.request_time = 0.0
            self.latency = 0.0
            self.upstream_latency = 0.0

    def error_list(self) -> list[tuple[str, int]]:
        """The error map as sorted ``(code, count)`` pairs (Tyk's ``ErrorList``)."""
        return error_list(self.error_map)


class TimeID(NamedTuple):
    """Calendar fields of a time, as Tyk's ``TimeID`` struct."""

    year: int
    month: int
    day: int
    hour: int

    @classmethod
    def of(cls, ts: datetime) -> TimeID:
        return cls(ts.year, ts.month, ts.day, ts.hour)


@dataclass(slots=True)
class OrgAggregate:
    """One organisation's aggregate for one batch (Tyk's ``AnalyticsRecordAggregate``).

    ``timestamp`` is the bucket; ``time_id``, ``expire_at`` come from the org's first record of
    the batch and ``last_time`` from its last one (§3.1). Dimension maps are keyed by the
    already-sanitised key that ends up in the Mongo path / SQL ``dimension_value``.
    """

    org_id: str
    timestamp: datetime
    expire_at: datetime = ZERO_TIME
    time_id: TimeID = TimeID(1, 1, 1, 0)  # noqa: RUF009 - an immutable NamedTuple
    last_time: datetime = ZERO_TIME
    apiid: dict[str, Counter] = field(default_factory=dict)
    errors: dict[str, Counter] = field(default_factory=dict)
    versions: dict[str, Counter] = field(default_factory=dict)
    apikeys: dict[str, Counter] = field(default_factory=dict)
    oauthids: dict[str, Counter] = field(default_factory=dict)
    geo: dict[str, Counter] = field(default_factory=dict)
    tags: dict[str, Counter] = field(default_factory=dict)
    endpoints: dict[str, Counter] = field(default_factory=dict)
    keyendpoints: dict[str, dict[str, Counter]] = field(default_factory=dict)
    oauthendpoints: dict[str, dict[str, Counter]] = field(default_factory=dict)
    apiendpoints: dict[str, Counter] = field(default_factory=dict)
    total: Counter = field(default_factory=Counter)
    #: Opt-in dimensions of ours (``pump.aggregate.extra``): name → value → counter; empty unless
    #: the pump lists them in ``extra_dimensions``.
    extra: dict[str, dict[str, Counter]] = field(default_factory=dict)


def iter_dimensions(agg: OrgAggregate) -> Iterator[tuple[str, str, Counter]]:
    """Every ``(dimension, value, counter)`` of an aggregate, total last.

    Order is :data:`DIMENSIONS` order, then first-seen order of keys within a dimension, so the
    output is a pure function of the input batch. Nested dimensions yield ``"<outer>.<inner>"``
    as the value, which is both Tyk's SQL ``dimension_value`` and the Mongo path segment.
    """
    for name in DIMENSIONS:
        table = getattr(agg, name)
        if name in NESTED_DIMENSIONS:
            for outer, inner in table.items():
                for key, counter in inner.items():
                    yield name, f"{outer}.{key}", counter
        else:
            for key, counter in table.items():
                yield name, key, counter
    for name, table in agg.extra.items():
        for key, counter in table.items():
            yield name, key, counter
    yield TOTAL_DIMENSION, TOTAL_VALUE, agg.total
