"""``mongo``: Tyk's MongoDB pump — every record as a document in one collection (tyk-pump.md §4).

Documents are Tyk's (:func:`pump.sinks.mongo.documents.to_document`): lower-cased Go field names,
Go integer widths. Network-only (``ResponseCode -1``) and MCP records are skipped, GraphQL records
are kept. A record whose raw request + response + 1 KiB exceeds ``max_document_size_bytes`` is
written without its raw request and with Tyk's "Document too large" note as raw response. Records
are sent in runs of at most ``max_insert_batch_size_bytes`` (Tyk's estimate), concurrently.

Exactly-once per record: ``_id`` is derived from the record id, inserts are unordered and a
duplicate ``_id`` counts as written, so a batch delivered twice (retry, crash, lease expiry)
leaves the collection unchanged. The collection is capped when ``collection_cap_enable`` asks
for it and it does not exist yet; indexes (``orgid``, ``apiid``, ``logBrowserIndex``) are made
when this process first writes to a new collection. Both are best-effort.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import Field, field_validator

from pump.errors import RejectedRecords
from pump.record import Record
from pump.sinks.base import SinkBatch, SinkContext
from pump.sinks.mongo.client import RAW_INDEXES, MongoTarget
from pump.sinks.mongo.config import CollectionMeta
from pump.sinks.mongo.documents import chunk_by_size, estimated_size, gc_paused, skipped_by_raw_pumps, strip_raw_payloads, to_document
from pump.sinks.mongo.errors import InsertOutcome

log = logging.getLogger(__name__)


class Meta(CollectionMeta):
    """Tyk's ``MongoConf``."""

    collection_name: str = Field("", validate_default=True, description="the collection every record goes to")

    @field_validator("collection_name")
    @classmethod
    def _collection_required(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("required: the collection to write records to, e.g. tyk_analytics (Tyk stops with 'No collection name!')")
        return v.strip()


class MongoSink:
    """Raw records into ``collection_name``."""

    def __init__(
        self,
        name: str,
        meta: CollectionMeta,
        timeout: float = 0,
        *,
        skip: bool = True,
        keep: Callable[[Record], bool] | None = None,
        document: Callable[[Record], dict[str, Any]] = to_document,
        strip: bool = True,
    ) -> None:
        """``keep`` (the graph and MCP pumps) selects records instead of the raw pump's skip
        rule; ``document`` makes a record's document; ``strip`` applies Tyk's oversize rule
        (its graph pump stores oversized records whole)."""
        self.name = name
        self.meta = meta
        self.target = MongoTarget(meta, name, timeout)
        self.skip = skip
        self.keep = keep
        self.document = document
        self.strip = strip

    async def start(self) -> None:
        await self.target.connect()
        await self.target.prepare(self.meta.collection_name, RAW_INDEXES, self.meta.cap_bytes if self.meta.collection_cap_enable else 0)

    async def write(self, batch: SinkBatch) -> None:
        docs, positions, sizes = self._documents(batch.records)
        if not docs:
            return
        outcome = await insert_in_runs(self.target, self.meta.collection_name, docs, positions, sizes, self.meta.batch_bytes)
        if outcome.rejected or outcome.retry:
            raise RejectedRecords(outcome.rejected, outcome.retry)

    def _documents(self, records: Sequence[Record]) -> tuple[list[dict[str, Any]], list[int], list[int]]:
        with gc_paused():
            return self._build(records)

    def _build(self, records: Sequence[Record]) -> tuple[list[dict[str, Any]], list[int], list[int]]:
        docs: list[dict[str, Any]] = []
        positions: list[int] = []
        sizes: list[int] = []
        limit = self.meta.document_bytes
        stripped = 0
        for i, rec in enumerate(records):
            if (self.skip and skipped_by_raw_pumps(rec)) or (self.keep is not None and not self.keep(rec)):
                continue
            doc = self.document(rec)
            size = estimated_size(rec)
            if size > limit and self.strip:
                strip_raw_payloads(doc)
                stripped += 1
            docs.append(doc)
            positions.append(i)
            sizes.append(size)
        if stripped:
            log.warning(
                "Document too large, not writing raw request and raw response.",
                extra={"pump": self.name, "records": stripped, "max_document_size_bytes": limit},
            )
        return docs, positions, sizes

    async def close(self) -> None:
        await self.target.close()

    async def check(self) -> None:
        await self.target.check()


async def insert_in_runs(
    target: MongoTarget,
    collection: str,
    docs: list[dict[str, Any]],
    positions: list[int],
    sizes: list[int],
    limit: int,
) -> InsertOutcome:
    """Insert the documents in size-bounded runs at the same time (Tyk writes its chunks from
    parallel goroutines) and merge what the server left undone."""
    runs = chunk_by_size(sizes, limit)
    results = await asyncio.gather(
        *(target.insert(collection, docs[r.start : r.stop], positions[r.start : r.stop]) for r in runs),
        return_exceptions=True,
    )
    outcome = InsertOutcome()
    for result in results:
        if isinstance(result, BaseException):
            raise result
        outcome.merge(result)
    return outcome


def build(ctx: SinkContext, meta: Meta) -> MongoSink:
    return MongoSink(ctx.name, meta, ctx.pump.timeout)
