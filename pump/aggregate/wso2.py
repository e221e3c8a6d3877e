"""WSO2 API Manager's summary tables from Tyk records (``sql_aggregate`` ``mode: wso2_summary``).

The tables, their columns and primary keys are those of WSO2's statistics model
(``ApiUserPerAppAgg_<granularity>`` … ``ApiFaultyInvocationAgg_<granularity>`` and
``ApiLastAccessSummary``); docs/wso2-summary.md gives the mapping from Tyk's record fields and
the columns a Tyk record has no source for (NULL, or ``""`` where the column is part of the key).

Pure: :func:`facts` turns a record into WSO2's attribute names once; :func:`summary_rows` groups a
batch into one row per table and key, merged with each column's :class:`Merge` rule — the same
rules the sink renders as ``ON CONFLICT … DO UPDATE``, so the Python merge is their reference.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from pump.aggregate.rollups import FLOOR
from pump.record import Record
from pump.transforms.eventkind import event_kind
from pump.transforms.useragent import parse_user_agent

#: WSO2's table suffix per granularity (its ``SECONDS`` tables have no equivalent here).
SUFFIX: dict[str, str] = {"minute": "MINUTES", "hour": "HOURS", "day": "DAYS", "month": "MONTHS", "year": "YEARS"}
#: Longest text value (the seed's ``varchar(254)``); longer values are cut to fit.
TEXT_LIMIT = 254

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


class Merge(enum.StrEnum):
    """How a column combines a stored row with an incoming one for the same key."""

    KEY = "key"  # part of the primary key (NOT NULL; "" when the record has no value)
    SUM = "sum"
    MAX = "max"
    LATEST = "latest"  # the incoming value, unless it is NULL
    NULL = "null"  # no source in a Tyk record: always NULL


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    kind: str  # "bigint" | "text"
    merge: Merge


@dataclass(frozen=True, slots=True)
class Table:
    """One WSO2 summary table; ``records`` says which event kinds it counts."""

    name: str
    columns: tuple[Column, ...]
    granular: bool = True
    records: str = "request"  # "request" (not throttled), "all", "fault"

    @property
    def key(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.merge is Merge.KEY)

    def table_name(self, granularity: str | None) -> str:
        return f"{self.name}_{SUFFIX[granularity]}" if self.granular and granularity else self.name


def _cols(spec: str) -> tuple[Column, ...]:
    """``"name:kind:merge …"`` → columns (kinds b = bigint, t = text)."""
    out = []
    for item in spec.split():
        name, kind, merge = item.split(":")
        out.append(Column(name, "bigint" if kind == "b" else "text", Merge(merge)))
    return tuple(out)


_TIMES = "AGG_TIMESTAMP:b:key AGG_EVENT_TIMESTAMP:b:key"
_API = "apiName:t:latest apiVersion:t:latest apiCreator:t:null apiCreatorTenantDomain:t:latest"
_GW = "gatewayType:t:null label:t:null regionalID:t:null"
_LAST = "AGG_LAST_EVENT_TIMESTAMP:b:max"

TABLES: tuple[Table, ...] = (
    Table("ApiUserPerAppAgg", _cols(
        f"{_TIMES} apiContext:t:key apiHostname:t:key applicationId:t:key username:t:key userTenantDomain:t:key {_LAST} "
        f"{_API} applicationName:t:latest applicationOwner:t:null {_GW} AGG_COUNT:b:sum")),
    Table("ApiResPathPerApp", _cols(
        f"{_TIMES} apiContext:t:key apiHostname:t:key applicationId:t:key apiResourceTemplate:t:key apiMethod:t:key {_LAST} "
        f"{_API} applicationName:t:latest {_GW} AGG_COUNT:b:sum")),
    Table("ApiPerDestinationAgg", _cols(
        f"{_TIMES} apiContext:t:key apiHostname:t:key destination:t:key {_LAST} {_API} {_GW} AGG_COUNT:b:sum")),
    Table("ApiVersionPerAppAgg", _cols(
        f"{_TIMES} apiContext:t:key apiHostname:t:key applicationId:t:key {_LAST} {_API} applicationName:t:latest {_GW} "
        "AGG_COUNT:b:sum AGG_SUM_quotaExceededValue:b:sum"), records="all"),
    Table("ApiExeTime", _cols(
        f"{_TIMES} apiContext:t:key apiHostname:t:key apiResourceTemplate:t:key apiMethod:t:key {_LAST} {_API} "
        "regionalID:t:null AGG_SUM_responseTime:b:sum AGG_COUNT:b:sum AGG_SUM_serviceTime:b:sum AGG_SUM_backendTime:b:sum "
        "AGG_SUM_securityLatency:b:null AGG_SUM_throttlingLatency:b:null AGG_SUM_requestMedLat:b:null "
        "AGG_SUM_responseMedLat:b:null AGG_SUM_backendLatency:b:sum AGG_SUM_otherLatency:b:null")),
    Table("ApiUserBrowserAgg", _cols(
        f"{_TIMES} apiContext:t:key apiCreator:t:key apiCreatorTenantDomain:t:key operatingSystem:t:key browser:t:key {_LAST} "
        f"apiName:t:latest apiVersion:t:latest {_GW} AGG_COUNT:b:sum")),
    Table("APIM_ReqCountAgg", _cols(
        f"{_TIMES} apiName:t:key apiVersion:t:key apiCreator:t:key apiCreatorTenantDomain:t:key applicationName:t:key {_LAST} "
        "regionalID:t:null AGG_SUM_successCount:b:sum AGG_SUM_throttleCount:b:sum"), records="all"),
    Table("ApiLastAccessSummary", _cols(
        "apiContext:t:latest apiName:t:key apiVersion:t:latest apiCreator:t:key apiCreatorTenantDomain:t:key "
        "applicationOwner:t:null lastAccessTime:b:max"), granular=False),
    Table("GeoLocationAgg", _cols(
        f"{_TIMES} apiContext:t:key country:t:key city:t:key {_LAST} {_API} username:t:latest userTenantDomain:t:latest "
        "totalCount:b:sum regionalID:t:null"), records="geo"),
    Table("ApiFaultyInvocationAgg", _cols(
        f"{_TIMES} apiContext:t:key applicationId:t:key hostname:t:key {_LAST} {_API} applicationConsumerKey:t:latest "
        "applicationName:t:latest requestTimestamp:b:max regionalID:t:null AGG_COUNT:b:sum"), records="fault"),
)  # fmt: skip

BY_NAME: dict[str, Table] = {t.name: t for t in TABLES}


def unix_ms(ts: datetime) -> int:
    """Whole milliseconds since the epoch (WSO2's ``long`` timestamps)."""
    return (ts - _EPOCH) // _MS


def _text(value: str) -> str | None:
    return value[:TEXT_LIMIT] if value else None


def facts(rec: Record) -> dict[str, Any]:
    """A record under WSO2's attribute names (the mapping of docs/wso2-summary.md)."""
    kind = event_kind(rec)
    throttled = 1 if kind == "throttled" else 0
    ua = parse_user_agent(rec.user_agent)
    city = (rec.geo_city_names or {}).get("en", "")
    ms = unix_ms(rec.timestamp)
    return {
        "kind": kind,
        "apiContext": _text(rec.listen_path or rec.api_id),
        "apiHostname": _text(rec.host),
        "hostname": _text(rec.host),
        "applicationId": _text(rec.oauth_id or rec.api_key),
        "applicationName": _text(rec.alias),
        "applicationConsumerKey": _text(rec.api_key),
        "username": _text(rec.alias),
        "userTenantDomain": _text(rec.org_id),
        "apiName": _text(rec.api_name),
        "apiVersion": _text(rec.api_version),
        "apiCreatorTenantDomain": _text(rec.org_id),
        "apiResourceTemplate": _text(rec.path),
        "apiMethod": _text(rec.method),
        "operatingSystem": _text(ua.os) or "Other",
        "browser": _text(ua.browser) or "Other",
        "country": _text(rec.geo_country_iso_code),
        "city": _text(city),
        "AGG_LAST_EVENT_TIMESTAMP": ms,
        "lastAccessTime": ms,
        "requestTimestamp": ms,
        "AGG_COUNT": 1,
        "totalCount": 1,
        "AGG_SUM_quotaExceededValue": throttled,
        "AGG_SUM_successCount": 1 - throttled,
        "AGG_SUM_throttleCount": throttled,
        "AGG_SUM_responseTime": rec.request_time,
        "AGG_SUM_serviceTime": rec.latency_gateway,
        "AGG_SUM_backendTime": rec.latency_upstream,
        "AGG_SUM_backendLatency": rec.latency_upstream,
    }


def counts(table: Table, fact: dict[str, Any]) -> bool:
    """Whether a record counts in ``table``: the request tables leave throttled calls out (WSO2
    publishes them on its throttle stream only), the fault table takes faults only, the geo table
    records with a country."""
    if table.records == "all":
        return True
    if table.records == "fault":
        return bool(fact["kind"] == "fault")
    if table.records == "geo":
        return fact["kind"] != "throttled" and fact["country"] is not None
    return bool(fact["kind"] != "throttled")


def _row(table: Table, fact: dict[str, Any], bucket_ms: int) -> tuple[Any, ...]:
    out: list[Any] = []
    for c in table.columns:
        if c.name in ("AGG_TIMESTAMP", "AGG_EVENT_TIMESTAMP"):
            out.append(bucket_ms)
        elif c.merge is Merge.NULL:
            out.append(None)
        elif c.merge is Merge.KEY:
            out.append(fact.get(c.name) or "")
        else:
            out.append(fact.get(c.name))
    return tuple(out)


def merge(table: Table, stored: Sequence[Any], incoming: Sequence[Any]) -> tuple[Any, ...]:
    """The row ``ON CONFLICT`` leaves (the sink's SQL follows the same rules)."""
    out: list[Any] = []
    for c, a, b in zip(table.columns, stored, incoming, strict=True):
        if c.merge is Merge.SUM:
            out.append((a or 0) + (b or 0))
        elif c.merge is Merge.MAX:
            out.append(b if a is None else a if b is None else max(a, b))
        elif c.merge is Merge.LATEST:
            out.append(a if b is None else b)
        elif c.merge is Merge.NULL:
            out.append(None)
        else:
            out.append(a)
    return tuple(out)


def summary_rows(records: Sequence[Record], granularities: Sequence[str]) -> dict[str, list[tuple[Any, ...]]]:
    """``{table name: rows}`` for a batch: one row per key, sorted by key (a redelivered batch
    gives the same statements; concurrent writers lock rows in the same order). Records that are
    no request (Tyk's ``-1`` network records) are left out.

    Granularities go finest first; one that splits the batch into as many buckets as the finer
    one before it has the same groups, so its rows are that one's with the coarser bucket (the
    usual case: a batch spans seconds) instead of another pass over the records."""
    fs = [(rec.timestamp, facts(rec)) for rec in records if rec.response_code != -1]
    ordered = sorted(granularities, key=lambda g: list(SUFFIX).index(g))
    out: dict[str, list[tuple[Any, ...]]] = {}
    previous_groups = -1
    previous: dict[str, dict[tuple[Any, ...], tuple[Any, ...]]] = {}
    start_of: dict[int, datetime] = {}  # bucket ms → its start, in the records' own zone
    for granularity in ordered:
        floor = FLOOR[granularity]
        starts = [floor(ts) for ts, _ in fs]
        buckets = [unix_ms(d) for d in starts]
        start_of.update(zip(buckets, starts, strict=True))
        groups = len(set(buckets))
        current: dict[str, dict[tuple[Any, ...], tuple[Any, ...]]] = {}
        for table in TABLES:
            if not table.granular:
                continue
            if groups == previous_groups and table.name in previous:
                current[table.name] = _rebucket(previous[table.name], partial(_coarser, floor, start_of))
            else:
                current[table.name] = _merged(table, fs, buckets)
            if current[table.name]:
                out[table.table_name(granularity)] = [current[table.name][k] for k in sorted(current[table.name])]
        previous_groups, previous = groups, current
    last = BY_NAME["ApiLastAccessSummary"]
    rows = _merged(last, fs, [0] * len(fs))
    if rows:
        out[last.name] = [rows[k] for k in sorted(rows)]
    return out


def _merged(table: Table, fs: Sequence[tuple[datetime, dict[str, Any]]], buckets: Sequence[int]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    keys = [i for i, c in enumerate(table.columns) if c.merge is Merge.KEY]
    merged: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for (_, fact), bucket in zip(fs, buckets, strict=True):
        if not counts(table, fact):
            continue
        row = _row(table, fact, bucket)
        key = tuple(row[i] for i in keys)
        old = merged.get(key)
        merged[key] = row if old is None else merge(table, old, row)
    return merged


def _coarser(floor: Callable[[datetime], datetime], start_of: dict[int, datetime], ms: int) -> int:
    return unix_ms(floor(start_of[ms]))


def _rebucket(rows: dict[tuple[Any, ...], tuple[Any, ...]], coarser: Callable[[int], int]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """Rows whose two leading bucket columns (and key fields) move to the coarser bucket; the
    groups are the same, so no two rows meet in one key."""
    out: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    cache: dict[int, int] = {}
    for key, row in rows.items():
        old = row[0]
        new = cache.get(old)
        if new is None:
            new = cache[old] = coarser(old)
        out[(new, new, *key[2:])] = (new, new, *row[2:])
    return out
