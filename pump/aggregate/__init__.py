"""Tyk-compatible analytics aggregation, as pure functions (tyk-pump.md §3).

* :mod:`.model` — :class:`Counter`, :class:`OrgAggregate`, dimension order and field-name maps.
* :mod:`.buckets` — hour/minute buckets, Mongo's :class:`BucketClock`, self-healing helpers.
* :mod:`.engine` — records → one aggregate per org (:func:`aggregate_records`).
* :mod:`.sql_rows` — aggregates → ``tyk_aggregated`` rows and the ON CONFLICT rules as data.
* :mod:`.mongo_update` — aggregates → the two Mongo update documents.

Nothing here does I/O; the SQL and Mongo aggregate sinks own connections, retries and the
exactly-once ledger.
"""

from __future__ import annotations

from pump.aggregate.buckets import (
    BucketClock,
    effective_aggregation_time,
    halve_aggregation_time,
    hour_floor,
    is_size_error,
    minute_floor,
    should_self_heal,
    sql_bucketer,
)
from pump.aggregate.engine import aggregate_records
from pump.aggregate.model import (
    BSON_NAMES,
    DIMENSIONS,
    SQL_NAMES,
    Counter,
    OrgAggregate,
    TimeID,
    iter_dimensions,
)
from pump.aggregate.mongo_update import (
    as_change,
    as_time_update,
    collection_names,
    discard_aggregations,
    tag_count_warning,
    upsert_filter,
)
from pump.aggregate.sql_rows import (
    ON_CONFLICT,
    SQL_COLUMNS,
    AggregateRow,
    Merge,
    build_rows,
    merge_row,
    update_rules,
)

__all__ = [
    "BSON_NAMES",
    "DIMENSIONS",
    "ON_CONFLICT",
    "SQL_COLUMNS",
    "SQL_NAMES",
    "AggregateRow",
    "BucketClock",
    "Counter",
    "Merge",
    "OrgAggregate",
    "TimeID",
    "aggregate_records",
    "as_change",
    "as_time_update",
    "build_rows",
    "collection_names",
    "discard_aggregations",
    "effective_aggregation_time",
    "halve_aggregation_time",
    "hour_floor",
    "is_size_error",
    "iter_dimensions",
    "merge_row",
    "minute_floor",
    "should_self_heal",
    "sql_bucketer",
    "tag_count_warning",
    "update_rules",
    "upsert_filter",
]
