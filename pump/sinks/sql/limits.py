"""How long an aggregate row's key may be: PostgreSQL (and MariaDB) cannot index longer keys, so
longer ids are hashed and over-long dimension rows dropped (and counted), on every backend alike."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from pump.aggregate.model import TOTAL_DIMENSION, TOTAL_VALUE
from pump.aggregate.sql_rows import AggregateRow

#: Longest ``id`` written as Tyk writes it (hex of bucket + org + dimension + value, so keys up to
#: 1,300 bytes). PostgreSQL cannot index a longer key (B-tree entries are limited to 2,704 bytes),
#: which would make the whole batch fail — as it does in Tyk. A longer id is replaced by
#: :func:`long_row_id`, which any index holds, on both backends alike.
MAX_ID_LENGTH = 2600

#: Longest key (UTF-8 bytes of bucket seconds + org + dimension + value) a row can be stored with:
#: ``idx_dimension`` holds the same text, under the same 2,704-byte limit. A dimension row over
#: it (in practice an endpoint of a pathological path) is dropped and counted in
#: ``pump_aggregate_dimensions_dropped_total``; the record still counts in the total and in every
#: other dimension. A record whose org id leaves no room even for its total row is dead-lettered.
MAX_KEY_BYTES = 2600

#: Room the total row's key needs besides the org id: the bucket's unix seconds (12 characters at
#: most, year 1 included) and the total's dimension and value.
_TOTAL_KEY_EXTRA = 12 + len(TOTAL_DIMENSION) + len(TOTAL_VALUE)


def long_row_id(hex_id: str) -> str:
    """The id of a row whose Tyk id is over :data:`MAX_ID_LENGTH`: deterministic, so redeliveries
    and other pumps upsert the same row, and never equal to a Tyk id (those are bare hex)."""
    return "sha256:" + hashlib.sha256(hex_id.encode()).hexdigest()


def fit_row(row: AggregateRow) -> AggregateRow | None:
    """``row`` as it can be stored: unchanged, under :func:`long_row_id`, or None (its key is over
    :data:`MAX_KEY_BYTES`)."""
    if len(row.id) <= MAX_ID_LENGTH:
        return row
    if len(row.id) // 2 > MAX_KEY_BYTES:
        return None
    return row._replace(id=long_row_id(row.id))


def org_fits(record: Any) -> bool:
    """False when the record's org id is too long for even its total row to be stored."""
    org: str = getattr(record, "org_id", "") or ""
    room = MAX_KEY_BYTES - _TOTAL_KEY_EXTRA
    return len(org) * 4 <= room or len(org.encode("utf-8", "surrogateescape")) <= room  # 4: UTF-8's longest


def org_rejections(records: Sequence[Any]) -> dict[int, str]:
    """Batch index → dead-letter reason for the records :func:`org_fits` refuses."""
    limit = MAX_KEY_BYTES - _TOTAL_KEY_EXTRA
    return {
        i: f"org id of {len(r.org_id)} characters is too long for an aggregate row (at most {limit} bytes fit the index)"
        for i, r in enumerate(records)
        if not org_fits(r)
    }
