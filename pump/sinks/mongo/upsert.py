"""Tyk's two-step aggregate upsert plus the exactly-once ledger, for one aggregate and one
collection (:class:`AggregateWriter`; the scheme is described in ``pump.sinks.mongo.aggregate``).

Separate from the sink so the real-server tests can drive it directly with Tyk's golden aggregates.

A large aggregate (more than ``max_paths`` operator paths: high-cardinality endpoints, keys, tags)
is written in parts (:mod:`pump.aggregate.mongo_parts`), because one huge update does not finish
on FerretDB. Exactly-once still holds: every part but the last is guarded by, and records, a part
marker ``<batch id>#<k>`` in ``_pump_parts``; the last part records the batch id in
``_pump_applied`` as a single update does (and drops the markers), so a batch that comes back
skips the parts it already wrote and, once complete, is skipped whole like any other. The parts
of a batch are the same on every delivery (a fixed order of the aggregate's counters). What a
server would refuse (too large, invalid names, conflicting paths) is checked over the whole update
before the first part is sent, so a refused batch writes nothing, as before. Every call has a
timeout (``write_timeout``, on the client: the call is abandoned and its connection dropped); a
timed-out call is a ``RetriableError`` and the ledger makes its repetition harmless, also when the
server finished the update after the client gave up.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import bson
from bson import Int64

from pump.aggregate import as_change, as_time_update, upsert_filter
from pump.aggregate.model import OrgAggregate
from pump.aggregate.mongo_parts import MAX_UPDATE_PATHS, change_parts, count_paths, problems, set_parts
from pump.aggregate.mongo_update import LIST_REQUEST_TIME_TYK, Increments, batch_increments
from pump.errors import BatchDataError, RetriableError, SinkError
from pump.sinks.base import lineage as batch_lineage
from pump.sinks.mongo.documents import gc_paused, sanitize
from pump.sinks.mongo.errors import NOT_IMPLEMENTED, is_size_error, map_error

log = logging.getLogger(__name__)

#: Fields the step-1 update adds to Tyk's document for the exactly-once ledger.
LEDGER_FIELD = "_pump_applied"
LAST_FIELD = "_pump_last"
#: Markers ``<batch id>#<k>`` of the parts of a batch written so far (only while it is incomplete).
PARTS_FIELD = "_pump_parts"
#: The largest update pymongo sends (MongoDB's 16 MiB document limit, as ``DocumentTooLarge`` says).
MAX_UPDATE_BYTES = 16 * 1024 * 1024

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

    def __init__(
        self,
        ledger_size: int = 1000,
        where: str = "",
        max_paths: int = MAX_UPDATE_PATHS,
        timeout: float = 0,
        lists_request_time: str = LIST_REQUEST_TIME_TYK,
    ) -> None:
        self.ledger_size = ledger_size
        self.where = where
        self.lists_request_time = lists_request_time
        #: Operator paths per update before an aggregate is written in parts.
        self.max_paths = max_paths
        #: Seconds each server call may take (0: none); see the module docstring.
        self.timeout = timeout
        self.projection: dict[str, int] | None = {"lists": 0, LEDGER_FIELD: 0}
        self._known: dict[tuple[str, str, Any, Any], None] = {}

    async def write(
        self,
        collection: Any,
        agg: OrgAggregate,
        batch_id: str,
        query: dict[str, Any] | None = None,
        change: dict[str, dict[str, Any]] | None = None,
        skip: frozenset[str] = frozenset(),
        written: set[str] | None = None,
    ) -> WriteResult:
        """Write ``agg`` for ``batch_id``; ``query`` and ``change`` replace Tyk's ``{orgid,
        timestamp}`` filter and ``AsChange`` update (the MCP aggregate adds ``owner_apiid`` and its
        dimensions). A Tyk aggregate over ``max_paths`` is written in parts, leaving out the
        counters whose prefixes are in ``skip``.

        ``written`` receives the counter prefixes of every part applied. The sink keeps both per
        batch in this process: a part refused after others were applied (a stored document grown
        too large, a clash with another pump's data) makes the delivery layer split the batch, and
        the halves skip what their ancestor already wrote instead of counting it twice."""
        ids = lineage(batch_id)
        query = query if query is not None else upsert_filter(agg)
        with gc_paused():
            custom = change is not None
            change = go_typed(change if change is not None else as_change(agg))
        if not custom and (count_paths(change) > self.max_paths or skip):
            self._check_whole(change, agg, collection.name)
            return await self._write_parts(collection, agg, batch_id, skip, written, batch_increments(change))
        change["$set"][LAST_FIELD] = batch_id
        change["$push"] = {LEDGER_FIELD: {"$each": [batch_id], "$slice": -self.ledger_size}}
        doc, applied = await self._step1_mapped(agg, f"aggregate upsert into {collection.name}", collection, query, change, ids)
        return await self._finish(collection, doc, applied, ids, batch_id, batch_increments(change))

    async def write_ids(self, collection: Any, agg: OrgAggregate, batch_ids: list[str]) -> WriteResult:
        """:meth:`write` of an aggregate that holds several batches (``publish_interval``): all
        their ids are recorded with it, and it is skipped if the document has any of them (the
        caller then drops those batches from the aggregate and writes the rest). An update too
        large for one call is refused as data: the publisher then writes the batches one by one,
        through :meth:`write` and its parts."""
        if len(batch_ids) == 1:
            return await self.write(collection, agg, batch_ids[0])
        ids = [i for b in batch_ids for i in lineage(b)]
        query = upsert_filter(agg)
        with gc_paused():
            change = go_typed(as_change(agg))
        if count_paths(change) > self.max_paths:
            raise BatchDataError(
                f"merged aggregate for {collection.name[:80]} has more than {self.max_paths} paths; written batch by batch"
            )
        change["$set"][LAST_FIELD] = batch_ids[-1]
        change["$push"] = {LEDGER_FIELD: {"$each": list(batch_ids), "$slice": -self.ledger_size}}
        doc, applied = await self._step1_mapped(agg, f"aggregate upsert into {collection.name}", collection, query, change, ids)
        return await self._finish(collection, doc, applied, ids, batch_ids[-1], batch_increments(change))

    def _check_whole(self, change: dict[str, Any], agg: OrgAggregate, collection: str) -> None:
        """Refuse, before any part is sent, what the server would refuse of the update as a whole
        (the single update it replaces): too large, not encodable, invalid or clashing paths."""
        from pymongo.errors import DocumentTooLarge

        try:
            size = len(bson.encode(change))
        except Exception as exc:
            raise map_error(exc, f"aggregate upsert into {collection}", self.where) from exc
        if size > MAX_UPDATE_BYTES:
            refused = DocumentTooLarge(f"BSON document too large ({size} bytes); MongoDB takes documents up to 16 MiB")
            raise AggregateTooLarge(agg.org_id, collection, refused)
        problem = problems(change)
        if problem:
            raise BatchDataError(f"mongo aggregate upsert into {collection[:80]} refused before writing ({self.where}): {problem}")

    async def _write_parts(
        self,
        collection: Any,
        agg: OrgAggregate,
        batch_id: str,
        skip: frozenset[str],
        written: set[str] | None,
        increments: Increments,
    ) -> WriteResult:
        """Write ``agg`` in parts (a new document too: creating one from 50,000 paths in a single
        upsert is as slow on FerretDB as updating one)."""
        ids = lineage(batch_id)
        query = upsert_filter(agg)
        try:
            async with self._deadline():
                state = await collection.find_one(query, projection={LEDGER_FIELD: 1, PARTS_FIELD: 1, LAST_FIELD: 1})
        except Exception as exc:
            raise map_error(exc, f"read the aggregate ledger of {collection.name}", self.where) from exc
        if state is not None:
            self._remember((collection.name, query["orgid"], query["timestamp"], query.get("owner_apiid")))
        if state is not None and set(state.get(LEDGER_FIELD) or ()) & set(ids):  # complete already
            if state.get(LAST_FIELD) not in ids:
                return WriteResult(state, applied=False, refreshed=False)
            async with self._deadline():
                full = await collection.find_one(query, projection={"lists": 0})
            return await self._finish(collection, full, False, ids, batch_id, increments)
        done = set(state.get(PARTS_FIELD) or ()) if state is not None else set()
        with gc_paused():
            parts = change_parts(agg, self.max_paths, skip=skip)
        markers = [f"{batch_id}#{k}" for k in range(len(parts) - 1)]
        doc: dict[str, Any] = {}
        applied = False
        for k, (prefixes, part) in enumerate(parts):
            last = k == len(parts) - 1
            if not last and markers[k] in done:  # written by an earlier delivery of this batch
                if written is not None:
                    written.update(prefixes)
                continue
            update = go_typed(part)
            if last:
                update["$set"][LAST_FIELD] = batch_id
                update["$push"] = {LEDGER_FIELD: {"$each": [batch_id], "$slice": -self.ledger_size}}
                if markers:
                    update["$pullAll"] = {PARTS_FIELD: markers}
            else:
                update["$push"] = {PARTS_FIELD: {"$each": [markers[k]], "$slice": -self.ledger_size}}
            doing = f"aggregate upsert into {collection.name} (part {k + 1} of {len(parts)})"
            doc, applied = await self._step1_mapped(agg, doing, collection, query, update, ids, None if last else markers[k], last)
            if written is not None:
                written.update(prefixes)
        if not parts:
            return WriteResult(None, applied=False, refreshed=False)
        return await self._finish(collection, doc, applied, ids, batch_id, increments)

    async def _finish(
        self, collection: Any, doc: dict[str, Any], applied: bool, ids: list[str], batch_id: str, increments: Increments
    ) -> WriteResult:
        if not applied and doc.get(LAST_FIELD) not in ids:
            return WriteResult(doc, applied=False, refreshed=False)
        if not applied and doc.get(LAST_FIELD) != batch_id and self.lists_request_time == LIST_REQUEST_TIME_TYK:
            # An ancestor batch was applied (this is a piece of it): its step-1 increments, which
            # Tyk's lists requesttime needs (as_time_update), are not this batch's. Its step 2 has
            # almost always run; if not, the averages catch up with the document's next write.
            return WriteResult(doc, applied=False, refreshed=False)
        try:
            await self._step2(collection, doc, ids, increments)
        except Exception as exc:
            error = map_error(exc, f"aggregate averages update of {collection.name}", self.where)
            if isinstance(error, RetriableError):
                raise error from exc
            # The counts are in (step 1 is atomic); only the averages/lists of this document are
            # stale until its next write. Failing the batch would make delivery re-split it forever.
            return WriteResult(doc, applied=applied, refreshed=False, step2_error=str(error))
        return WriteResult(doc, applied=applied, refreshed=True)

    async def _step1_mapped(self, agg: OrgAggregate, doing: str, collection: Any, *args: Any, **kw: Any) -> tuple[dict[str, Any], bool]:
        """:meth:`_step1` with a driver error turned into the sink's error: a size refusal is
        :class:`AggregateTooLarge` (self-healing), the rest :func:`map_error` naming ``doing``."""
        try:
            return await self._step1(collection, *args, **kw)
        except SinkError:
            raise
        except Exception as exc:
            if is_size_error(exc):
                raise AggregateTooLarge(agg.org_id, collection.name, exc) from exc
            raise map_error(exc, doing, self.where) from exc

    async def _step1(
        self, collection: Any, query: dict[str, Any], change: dict[str, Any], ids: list[str], part: str | None = None, want_doc: bool = True
    ) -> tuple[dict[str, Any], bool]:
        """Apply the increments unless the bucket's document already recorded the batch (or, for
        ``part``, that part of it).

        Not a single guarded upsert: when the guard fails because the batch *is* recorded, an
        upsert would insert a second document for the bucket. So an upsert is only sent after a
        read found no document; a document this process has written before is updated directly
        (one round trip, the common case). A concurrent creator makes the next round match.
        Without ``want_doc`` the update does not send the (large) document back.
        """
        guarded = {**query, LEDGER_FIELD: {"$nin": ids}}
        if part is not None:
            guarded[PARTS_FIELD] = {"$nin": [part]}
        key = (collection.name, query["orgid"], query["timestamp"], query.get("owner_apiid"))
        for _ in range(5):
            if key in self._known:
                doc = await self._modify(collection, guarded, change, upsert=False, want_doc=want_doc)
                if doc is not None:
                    return doc, True
            async with self._deadline():
                existing = await collection.find_one(query, projection={"lists": 0})
            if existing is None:
                doc = await self._modify(collection, guarded, change, upsert=True, want_doc=want_doc)
                if doc is not None:
                    self._remember(key)
                    return doc, True
                continue
            self._remember(key)
            if set(existing.get(LEDGER_FIELD) or ()) & set(ids):
                return existing, False
            if part is not None and part in (existing.get(PARTS_FIELD) or ()):
                return existing, False
        raise RetriableError(f"aggregate document {query} kept changing under concurrent writers; will retry")

    def _deadline(self) -> Any:
        """The time limit of one server call, or none. Client-side (``asyncio.timeout``), not
        pymongo's ``timeout()``: under that, server selection after a lost connection waits for the
        whole limit instead of ``serverSelectionTimeoutMS``, so an outage would be seen a minute late."""
        import contextlib

        return asyncio.timeout(self.timeout) if self.timeout else contextlib.nullcontext()

    async def _modify(self, collection: Any, query: dict[str, Any], update: dict[str, Any], upsert: bool, want_doc: bool) -> Any:
        """The document after the update (``want_doc``), or ``{}``; None if nothing matched."""
        if want_doc:
            return await self._find_and_modify(collection, query, update, upsert)
        async with self._deadline():
            try:
                result = await collection.update_one(query, update, upsert=upsert)
            except UnicodeEncodeError:
                result = await collection.update_one(sanitize(query), sanitize(update), upsert=upsert)
        return {} if result.matched_count or result.upserted_id is not None else None

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
                async with self._deadline():
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
        """Averages and lists from the merged document, in parts of at most ``max_paths``; each
        part only while ``_pump_last`` is still this batch (a newer batch's step 2 covers the rest)."""
        with gc_paused():
            update = go_typed(as_time_update(doc, self.lists_request_time, increments))
        guard = {"_id": doc["_id"], LAST_FIELD: {"$in": ids}}
        for fields in set_parts(update["$set"], self.max_paths):
            async with self._deadline():
                try:
                    result = await collection.update_one(guard, {"$set": fields})
                except UnicodeEncodeError:
                    result = await collection.update_one(guard, sanitize({"$set": fields}))
            if not result.matched_count:
                return
