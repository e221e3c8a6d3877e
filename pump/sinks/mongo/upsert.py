"""Tyk's two-step aggregate upsert plus the exactly-once ledger, for one aggregate and one
collection (:class:`AggregateWriter`; the scheme is described in ``pump.sinks.mongo.aggregate``).

Separate from the sink so the real-server tests can drive it directly with Tyk's golden aggregates.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from bson import Int64

from pump.aggregate import as_change, as_time_update, upsert_filter
from pump.aggregate.model import OrgAggregate
from pump.aggregate.mongo_update import LIST_REQUEST_TIME_TYK, Increments, batch_increments
from pump.errors import RetriableError, SinkError
from pump.sinks.base import lineage as batch_lineage
from pump.sinks.mongo.documents import gc_paused, sanitize
from pump.sinks.mongo.errors import NOT_IMPLEMENTED, is_size_error, map_error

log = logging.getLogger(__name__)

#: Fields the step-1 update adds to Tyk's document for the exactly-once ledger.
LEDGER_FIELD = "_pump_applied"
LAST_FIELD = "_pump_last"

#: Counter fields that are Go ``int64`` (BSON int64 in Tyk's documents); the other integers are
#: Go ``int`` (int32 when they fit, which is also what pymongo writes for a plain ``int``).
INT64_FIELDS = frozenset(
    {
        "openconnections",
        "closedconnections",
        "bytesin",
        "bytesout",
        "maxupstreamlatency",
        "minupstreamlatency",
        "totalupstreamlatency",
        "maxlatency",
        "minlatency",
        "totallatency",
    }
)


def lineage(batch_id: str) -> list[str]:
    """:func:`pump.sinks.base.lineage`, newest first (``a.0.r1`` → ``a.0.r1, a.0, a``): the ids a
    document's ledger is searched for, nearest first.

    A document that recorded an ancestor already holds every record of this batch, because the
    delivery layer only splits a batch or retries part of it: its records are a subset.
    """
    return batch_lineage(batch_id)[::-1]


def go_typed(update: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """An update document with Go's ``int64`` counter fields as BSON int64 (Tyk's types)."""
    out: dict[str, dict[str, Any]] = {}
    for op, fields in update.items():
        typed: dict[str, Any] = {}
        for path, value in fields.items():
            kind = type(value)
            if kind is int:
                if path[path.rfind(".") + 1 :] in INT64_FIELDS:
                    value = Int64(value)
            elif kind is list and path.startswith("lists."):
                value = [typed_counter(c) for c in value]
            typed[path] = value
        out[op] = typed
    return out


def typed_counter(counter: Any) -> Any:
    if not isinstance(counter, dict):
        return counter
    return {k: Int64(v) if type(v) is int and k in INT64_FIELDS else v for k, v in counter.items()}


class AggregateTooLarge(Exception):
    """Step 1 of one org's write was refused as too large (the document or the update)."""

    def __init__(self, org: str, collection: str, cause: BaseException) -> None:
        self.org = org
        self.collection = collection
        self.cause = cause
        super().__init__(f"aggregate for org {org!r} in {collection} too large: {cause}")


@dataclass
class WriteResult:
    """What writing one aggregate to one collection did."""

    doc: dict[str, Any] | None
    applied: bool
    refreshed: bool
    step2_error: str = ""


class AggregateWriter:
    """Tyk's two-step upsert plus the exactly-once ledger, for one aggregate and one collection.

    Separate from the sink so the real-server tests can drive it directly with Tyk's golden
    aggregates. ``projection`` is dropped for good the first time a server says it cannot do it
    (FerretDB's ``findAndModify``), which costs a larger reply, not correctness.
    """

    def __init__(self, ledger_size: int = 1000, where: str = "", lists_request_time: str = LIST_REQUEST_TIME_TYK) -> None:
        self.ledger_size = ledger_size
        self.where = where
        self.lists_request_time = lists_request_time
        self.projection: dict[str, int] | None = {"lists": 0, LEDGER_FIELD: 0}
        self._known: dict[tuple[str, str, Any, Any], None] = {}

    async def write(
        self,
        collection: Any,
        agg: OrgAggregate,
        batch_id: str,
        query: dict[str, Any] | None = None,
        change: dict[str, dict[str, Any]] | None = None,
    ) -> WriteResult:
        """Write ``agg``; ``query`` and ``change`` replace Tyk's ``{orgid, timestamp}`` filter and
        ``AsChange`` update (the MCP aggregate adds ``owner_apiid`` and its dimensions)."""
        return await self.write_ids(collection, agg, [batch_id], query, change)

    async def write_ids(
        self,
        collection: Any,
        agg: OrgAggregate,
        batch_ids: list[str],
        query: dict[str, Any] | None = None,
        change: dict[str, dict[str, Any]] | None = None,
    ) -> WriteResult:
        """:meth:`write` of an aggregate that holds several batches (``publish_interval``): all
        their ids are recorded with it, and it is skipped if the document has any of them (the
        caller then drops those batches from the aggregate and writes the rest)."""
        ids = [i for b in batch_ids for i in lineage(b)]
        query = query if query is not None else upsert_filter(agg)
        with gc_paused():
            change = go_typed(change if change is not None else as_change(agg))
        change["$set"][LAST_FIELD] = batch_ids[-1]
        change["$push"] = {LEDGER_FIELD: {"$each": list(batch_ids), "$slice": -self.ledger_size}}
        try:
            doc, applied = await self._step1(collection, query, change, ids)
        except SinkError:
            raise
        except Exception as exc:
            if is_size_error(exc):
                raise AggregateTooLarge(agg.org_id, collection.name, exc) from exc
            raise map_error(exc, f"aggregate upsert into {collection.name}", self.where) from exc
        if not applied and doc.get(LAST_FIELD) not in ids:
            return WriteResult(doc, applied=False, refreshed=False)
        if not applied and doc.get(LAST_FIELD) != batch_ids[-1] and self.lists_request_time == LIST_REQUEST_TIME_TYK:
            # An ancestor batch was applied (this is a piece of it): its step-1 increments, which
            # Tyk's lists requesttime needs (as_time_update), are not this batch's. Its step 2 has
            # almost always run; if not, the averages catch up with the document's next write.
            return WriteResult(doc, applied=False, refreshed=False)
        try:
            await self._step2(collection, doc, ids, batch_increments(change))
        except Exception as exc:
            error = map_error(exc, f"aggregate averages update of {collection.name}", self.where)
            if isinstance(error, RetriableError):
                raise error from exc
            # The counts are in (step 1 is atomic); only the averages/lists of this document are
            # stale until its next write. Failing the batch would make delivery re-split it forever.
            return WriteResult(doc, applied=applied, refreshed=False, step2_error=str(error))
        return WriteResult(doc, applied=applied, refreshed=True)

    async def _step1(self, collection: Any, query: dict[str, Any], change: dict[str, Any], ids: list[str]) -> tuple[dict[str, Any], bool]:
        """Apply the increments unless the bucket's document already recorded the batch.

        Not a single guarded upsert: when the guard fails because the batch *is* recorded, an
        upsert would insert a second document for the bucket. So an upsert is only sent after a
        read found no document; a document this process has written before is updated directly
        (one round trip, the common case). A concurrent creator makes the next round match.
        """
        guarded = {**query, LEDGER_FIELD: {"$nin": ids}}
        key = (collection.name, query["orgid"], query["timestamp"], query.get("owner_apiid"))
        for _ in range(5):
            if key in self._known:
                doc = await self._find_and_modify(collection, guarded, change, upsert=False)
                if doc is not None:
                    return doc, True
            existing = await collection.find_one(query, projection={"lists": 0})
            if existing is None:
                doc = await self._find_and_modify(collection, guarded, change, upsert=True)
                if doc is not None:
                    self._remember(key)
                    return doc, True
                continue
            self._remember(key)
            if set(existing.get(LEDGER_FIELD) or ()) & set(ids):
                return existing, False
        raise RetriableError(f"aggregate document {query} kept changing under concurrent writers; will retry")

    def _remember(self, key: tuple[str, str, Any, Any]) -> None:
        """Documents known to exist (bounded: only the newest buckets matter)."""
        self._known[key] = None
        if len(self._known) > 4096:
            self._known.pop(next(iter(self._known)))

    async def _find_and_modify(self, collection: Any, query: dict[str, Any], update: dict[str, Any], upsert: bool) -> Any:
        from pymongo import ReturnDocument
        from pymongo.errors import OperationFailure

        while True:
            options: dict[str, Any] = {"upsert": upsert, "return_document": ReturnDocument.AFTER}
            if self.projection is not None:
                options["projection"] = self.projection
            try:
                try:
                    return await collection.find_one_and_update(query, update, **options)
                except UnicodeEncodeError:
                    return await collection.find_one_and_update(sanitize(query), sanitize(update), **options)
            except OperationFailure as exc:
                if exc.code == NOT_IMPLEMENTED and "projection" in options and "fields" in str(exc):
                    # "projection" in what was sent, not self.projection: a concurrent write may
                    # have found out (and dropped it) while this one was on its way.
                    if self.projection is not None:
                        log.info("The server cannot project findAndModify results; reading whole documents.", extra={"server": self.where})
                    self.projection = None
                    continue
                raise

    async def _step2(self, collection: Any, doc: dict[str, Any], ids: list[str], increments: Increments | None = None) -> None:
        with gc_paused():
            update = go_typed(as_time_update(doc, self.lists_request_time, increments))
        guard = {"_id": doc["_id"], LAST_FIELD: {"$in": ids}}
        try:
            await collection.update_one(guard, update)
        except UnicodeEncodeError:
            await collection.update_one(guard, sanitize(update))
