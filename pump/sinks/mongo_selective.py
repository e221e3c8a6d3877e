"""``mongo-pump-selective``: raw records into one collection per organisation (tyk-pump.md §4).

Collection ``z_tyk_analyticz_<OrgID>``; the document is the same as the ``mongo`` pump's. Records
without an OrgID, network-only (``-1``) and MCP records are skipped, as in Tyk.

Differences from Tyk, on purpose:

* a record over ``max_document_size_bytes`` is not written (Tyk's behaviour) but *dead-lettered*
  with the reason instead of silently dropped, so it can be inspected and replayed;
* insert errors are reported to the delivery layer (retried or dead-lettered) instead of only
  being logged — Tyk loses the batch;
* an org id that makes an invalid collection name (``$``, NUL, ``..``, over the namespace limit,
  not UTF-8) dead-letters that org's records with the reason; the other orgs are written.

Idempotent like ``mongo``: deterministic ``_id``, unordered inserts, duplicates ignored. New
per-org collections get ``apiid``, a TTL index on ``expireAt`` (best-effort) and
``logBrowserIndex``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from pydantic import Field

from pump.errors import RejectedRecords
from pump.record import Record
from pump.sinks.base import SinkBatch, SinkContext
from pump.sinks.mongo import insert_in_runs
from pump.sinks.mongo_common import (
    SELECTIVE_INDEXES,
    InsertOutcome,
    InvalidCollection,
    MongoTarget,
    SizedMongoMeta,
    collection_name_problem,
    database_name,
    estimated_size,
    gc_paused,
    map_error,
    skipped_by_raw_pumps,
    to_document,
)

log = logging.getLogger(__name__)

COLLECTION_PREFIX = "z_tyk_analyticz_"


class Meta(SizedMongoMeta):
    """Tyk's ``MongoSelectiveConf``."""

    collection_name: str = Field("", description="accepted for compatibility; the selective pump writes one collection per org")


def collection_for(org_id: str) -> str:
    """The selective pump's per-org collection."""
    return COLLECTION_PREFIX + org_id


class _OrgRun:
    __slots__ = ("docs", "positions", "sizes")

    def __init__(self) -> None:
        self.docs: list[dict[str, Any]] = []
        self.positions: list[int] = []
        self.sizes: list[int] = []


class MongoSelectiveSink:
    def __init__(self, name: str, meta: SizedMongoMeta, timeout: float = 0) -> None:
        self.name = name
        self.meta = meta
        self.target = MongoTarget(meta, name, timeout)

    async def start(self) -> None:
        await self.target.connect()

    async def write(self, batch: SinkBatch) -> None:
        per_org, too_large = self._group(batch.records)
        outcome = InsertOutcome(rejected=too_large)
        results = await asyncio.gather(*(self._write_org(org, run) for org, run in per_org.items()), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
            outcome.merge(result)
        if outcome.rejected or outcome.retry:
            raise RejectedRecords(outcome.rejected, outcome.retry)

    async def _write_org(self, org: str, run: _OrgRun) -> InsertOutcome:
        """One org's records into its collection. A name the driver or server refuses (decided
        up front where possible) rejects that org's records only: the others are written."""
        name = collection_for(org)
        problem = collection_name_problem(database_name(self.meta.mongo_url.get_secret_value()), name)
        if not problem:
            try:
                await self.target.prepare(name, SELECTIVE_INDEXES)
                return await insert_in_runs(self.target, name, run.docs, run.positions, run.sizes, self.meta.batch_bytes)
            except Exception as exc:
                error = map_error(exc, f"insert into {name[:80]}", self.target.where)
                if not isinstance(error, InvalidCollection):
                    raise
                problem = str(error)
        log.error(
            "Org id makes an invalid collection name; dead-lettering its records.",
            extra={"pump": self.name, "records": len(run.positions), "error": problem},
        )
        return InsertOutcome(rejected={pos: f"mongo-pump-selective: {problem}" for pos in run.positions})

    def _group(self, records: Sequence[Record]) -> tuple[dict[str, _OrgRun], dict[int, str]]:
        with gc_paused():
            return self._group_records(records)

    def _group_records(self, records: Sequence[Record]) -> tuple[dict[str, _OrgRun], dict[int, str]]:
        per_org: dict[str, _OrgRun] = {}
        too_large: dict[int, str] = {}
        limit = self.meta.document_bytes
        for i, rec in enumerate(records):
            if not rec.org_id or skipped_by_raw_pumps(rec):
                continue
            size = estimated_size(rec)
            if size > limit:
                too_large[i] = f"document too large for mongo-pump-selective: about {size} bytes > max_document_size_bytes {limit}"
                continue
            run = per_org.get(rec.org_id)
            if run is None:
                run = per_org[rec.org_id] = _OrgRun()
            run.docs.append(to_document(rec))
            run.positions.append(i)
            run.sizes.append(size)
        if too_large:
            log.warning(
                "Records over max_document_size_bytes are not written; dead-lettering them.",
                extra={"pump": self.name, "records": len(too_large), "max_document_size_bytes": limit},
            )
        return per_org, too_large

    async def close(self) -> None:
        await self.target.close()

    async def check(self) -> None:
        await self.target.check()


def build(ctx: SinkContext, meta: Meta) -> MongoSelectiveSink:
    return MongoSelectiveSink(ctx.name, meta, ctx.pump.timeout)
