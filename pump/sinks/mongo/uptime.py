"""Uptime pump, ``uptime_type: mongo``: host-checker results as Tyk's ``UptimeReportData`` documents.

Configured by ``uptime_pump_config`` (tyk-pump.md §4 "Uptime pumps"), which carries the same Mongo
keys as the ``mongo`` pump: documents (``url, requesttime, responsecode, tcperror, servererror,
day, month, year, hour, minute, timestamp, expireAt, apiid, orgid``) go to ``collection_name``
(default ``tyk_uptime_analytics``). Like Tyk's uptime pump, which is a ``mongo`` pump underneath,
a new collection gets the ``mongo`` pump's indexes and can be capped.

Tyk inserts uptime data best-effort and loses a failed batch; here it is delivered like analytics
records: a deterministic ``_id`` per result, unordered inserts, duplicates ignored, failures
retried or dead-lettered.
"""

from __future__ import annotations

from typing import Any

from pump.config.model import Config
from pump.errors import RejectedRecords
from pump.sinks.base import Sink, SinkBatch
from pump.sinks.mongo.client import RAW_INDEXES, MongoTarget
from pump.sinks.mongo.config import CollectionMeta
from pump.sinks.mongo.documents import gc_paused, uptime_document
from pump.sinks.mongo.raw import insert_in_runs

#: The uptime pump's name in logs and metrics (``pump.app.UPTIME_PUMP``).
NAME = "uptime"
DEFAULT_COLLECTION = "tyk_uptime_analytics"

#: ``uptime_pump_config`` keys that belong to the Mongo pump.
_MONGO_KEYS = tuple(CollectionMeta.model_fields)

#: Tyk's estimate for an uptime document (small and fixed: there are no raw payloads).
UPTIME_DOC_BYTES = 512


def uptime_meta(config: Config) -> CollectionMeta:
    """The Mongo settings of ``uptime_pump_config`` (its SQL keys are ignored here)."""
    up = config.uptime_pump_config
    if up is None:
        raise ValueError("uptime_pump_config is not set")
    values = {key: getattr(up, key) for key in _MONGO_KEYS if hasattr(up, key)}
    values["collection_name"] = values.get("collection_name") or DEFAULT_COLLECTION
    return CollectionMeta.model_validate(values)


class MongoUptimeSink:
    def __init__(self, meta: CollectionMeta, name: str = NAME) -> None:
        self.name = name
        self.meta = meta
        self.target = MongoTarget(meta, name)

    async def start(self) -> None:
        await self.target.connect()
        await self.target.prepare(self.meta.collection_name, RAW_INDEXES, self.meta.cap_bytes if self.meta.collection_cap_enable else 0)

    async def write(self, batch: SinkBatch) -> None:
        with gc_paused():
            docs: list[dict[str, Any]] = [uptime_document(u) for u in batch.records]
        if not docs:
            return
        positions = list(range(len(docs)))
        sizes = [UPTIME_DOC_BYTES] * len(docs)
        outcome = await insert_in_runs(self.target, self.meta.collection_name, docs, positions, sizes, self.meta.batch_bytes)
        if outcome.rejected or outcome.retry:
            raise RejectedRecords(outcome.rejected, outcome.retry)

    async def close(self) -> None:
        await self.target.close()

    async def check(self) -> None:
        await self.target.check()


def build_uptime(config: Config) -> Sink:
    """The uptime sink for ``uptime_pump_config`` (called by the daemon when uptime is purged)."""
    return MongoUptimeSink(uptime_meta(config))
