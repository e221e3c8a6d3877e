"""The connection to MongoDB: :class:`MongoTarget` (one pymongo ``AsyncMongoClient`` per pump) —
connect, ping, best-effort indexes (:class:`IndexSpec`, Tyk's index sets) and capped collections,
idempotent unordered inserts."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pump.errors import BatchDataError, RetriableError, SinkError
from pump.redact import redact_url
from pump.sinks.mongo.config import COSMOS_DB, DEFAULT_DATABASE, STANDARD_MONGO, BaseMongoMeta, client_options, database_name
from pump.sinks.mongo.documents import sanitize
from pump.sinks.mongo.errors import InsertOutcome, classify_write_errors, map_error, short

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- indexes


@dataclass(frozen=True)
class IndexSpec:
    """One index as Tyk creates it (``keys`` in order; ``ttl`` makes it a TTL index)."""

    keys: tuple[tuple[str, int], ...]
    name: str = ""
    ttl: bool = False
    #: ``expireAfterSeconds`` of a TTL index (Tyk's are 0: the document's ``expireAt`` is the time).
    expire_after: int = 0


def by_key(*names: str) -> IndexSpec:
    return IndexSpec(tuple((n, 1) for n in names))


TTL_INDEX = IndexSpec((("expireAt", 1),), ttl=True)
#: ``mongo``: ``orgid``, ``apiid`` and the log browser's compound index.
RAW_INDEXES = (
    by_key("orgid"),
    by_key("apiid"),
    IndexSpec((("timestamp", -1), ("orgid", 1), ("apiid", 1), ("apikey", 1), ("responsecode", 1)), "logBrowserIndex"),
)
#: ``mongo-pump-selective``: per-org collections, so no ``orgid`` in the keys; TTL on ``expireAt``.
SELECTIVE_INDEXES = (
    by_key("apiid"),
    TTL_INDEX,
    IndexSpec((("timestamp", -1), ("apiid", 1), ("apikey", 1), ("responsecode", 1)), "logBrowserIndex"),
)
#: ``mongo-pump-aggregate``: TTL on ``expireAt``, ``timestamp``, ``orgid``.
AGGREGATE_INDEXES = (TTL_INDEX, by_key("timestamp"), by_key("orgid"))


#: What pymongo appends to a server-selection error after the reason (see MongoTarget.check).
_TIMEOUTS = re.compile(r" \(configured timeouts: [^)]*\)")
_TOPOLOGY = re.compile(r", Timeout: .*$", re.DOTALL)


class MongoTarget:
    """One pump's client and database, plus the per-collection preparation it has done.

    The client is created in :meth:`connect` (not at build time) so ``pump validate`` never opens
    a connection, and closed in :meth:`close`, which is safe to call twice.
    """

    def __init__(self, meta: BaseMongoMeta, pump: str, timeout: float = 0) -> None:
        self.meta = meta
        self.pump = pump
        self.timeout = timeout
        self.where = redact_url(meta.mongo_url.get_secret_value())
        self.client: Any = None
        self.db: Any = None
        self._prepared: set[str] = set()
        self._existing: set[str] | None = None
        self._lock = asyncio.Lock()

    async def connect(self) -> None:
        """Create the client and ping the server; :class:`RetriableError` if it does not answer."""
        if self.client is None:
            from pymongo import AsyncMongoClient

            url = self.meta.mongo_url.get_secret_value()
            try:
                self.client = AsyncMongoClient(url, **client_options(self.meta, self.timeout))
            except Exception as exc:  # bad URL/TLS files: still not a reason to drop records
                raise map_error(exc, "connect", self.where) from exc
            self.db = self.client[database_name(url)]
            if not urlsplit(url).path.strip("/"):
                log.warning(
                    "mongo_url names no database; using the default.",
                    extra={"pump": self.pump, "database": DEFAULT_DATABASE, "url": self.where},
                )
        await self.ping()

    async def ping(self) -> None:
        try:
            await self.client.admin.command("ping")
        except Exception as exc:
            raise map_error(exc, "ping", self.where) from exc

    async def close(self) -> None:
        client, self.client, self.db = self.client, None, None
        self._prepared.clear()
        self._existing = None
        if client is not None:
            await client.close()

    async def check(self) -> None:
        """Connect and ping, then disconnect (``pump validate --check``). The error is one line:
        pymongo appends its timeouts and the whole topology description to the reason."""
        try:
            await self.connect()
        except SinkError as exc:
            one_line = _TOPOLOGY.sub("", _TIMEOUTS.sub("", str(exc)))
            raise (RetriableError if isinstance(exc, RetriableError) else BatchDataError)(one_line) from None
        finally:
            await self.close()

    def collection(self, name: str) -> Any:
        return self.db[name]

    # -- preparation (best effort) ------------------------------------------------------------------

    async def prepare(self, name: str, indexes: Iterable[IndexSpec], cap_bytes: int = 0) -> None:
        """Cap and index a collection the first time this process writes to it, as Tyk does.

        Like Tyk, an existing collection is left alone on standard MongoDB (it was prepared when
        it was created, and capping an existing collection would lose data); on DocumentDB and
        CosmosDB the existence check is skipped. Every step is best-effort: a server that refuses
        a TTL index or a capped collection (FerretDB, some managed services) gets a warning and
        the records are written anyway.
        """
        if name in self._prepared:
            return
        async with self._lock:
            if name in self._prepared:
                return
            exists = await self._exists(name)
            if cap_bytes:
                await self._create_capped(name, cap_bytes, exists)
            if self.meta.omit_index_creation:
                log.debug("omit_index_creation is set; no indexes created.", extra={"pump": self.pump, "collection": name})
            elif exists and self.meta.mongo_db_type == STANDARD_MONGO:
                log.debug("Collection exists; indexes left as they are.", extra={"pump": self.pump, "collection": name})
            else:
                for spec in indexes:
                    if spec.ttl and self.meta.mongo_db_type == COSMOS_DB:
                        continue  # CosmosDB has no expireAt TTL option (Tyk skips it too)
                    await self._create_index(name, spec)
            # Only now: a preparation that failed (server lost mid-way) is done again in full.
            if self._existing is not None:
                self._existing.add(name)
            self._prepared.add(name)

    async def _exists(self, name: str) -> bool:
        if self.meta.mongo_db_type != STANDARD_MONGO:
            return False
        if self._existing is None:
            try:
                self._existing = set(await self.db.list_collection_names())
            except Exception as exc:
                raise map_error(exc, "list collections", self.where) from exc
        return name in self._existing

    async def _create_capped(self, name: str, size: int, exists: bool) -> None:
        if exists:
            log.warning(
                "Collection already exists; capping it could lose data, so it is left uncapped.",
                extra={"pump": self.pump, "collection": name},
            )
            return
        from pymongo.errors import CollectionInvalid, OperationFailure

        try:
            await self.db.create_collection(name, capped=True, size=size)
            log.info("Capped collection created.", extra={"pump": self.pump, "collection": name, "bytes": size})
        except (CollectionInvalid, OperationFailure) as exc:
            log.warning(
                "The server refused to create a capped collection; writing to an uncapped one.",
                extra={"pump": self.pump, "collection": name, "error": short(str(exc), 200)},
            )
        except Exception as exc:
            raise map_error(exc, "create collection", self.where) from exc

    async def _create_index(self, name: str, spec: IndexSpec) -> None:
        from pymongo.errors import OperationFailure

        options: dict[str, Any] = {}
        if spec.name:
            options["name"] = spec.name
        if spec.ttl:
            options["expireAfterSeconds"] = spec.expire_after
        try:
            await self.db[name].create_index(list(spec.keys), **options)
        except OperationFailure as exc:
            what = "TTL index (documents will not expire by themselves)" if spec.ttl else "index"
            log.warning(
                f"The server refused to create a {what}; continuing without it.",
                extra={"pump": self.pump, "collection": name, "keys": [k for k, _ in spec.keys], "error": short(str(exc), 200)},
            )
        except Exception as exc:
            raise map_error(exc, "create index", self.where) from exc

    # -- idempotent inserts -------------------------------------------------------------------------

    async def insert(self, name: str, docs: list[dict[str, Any]], positions: Sequence[int]) -> InsertOutcome:
        """Insert ``docs`` unordered; ``positions[i]`` is the batch index of ``docs[i]``.

        Duplicate ``_id`` errors mean "already written by an earlier delivery" and are ignored;
        the server's other per-document refusals are sorted into rejected-for-good and retry.
        A string that is not valid UTF-8 makes the driver refuse the whole call before sending:
        the documents are then cleaned (:func:`sanitize`) and sent once more.
        """
        from pymongo.errors import BulkWriteError

        try:
            collection = self.db[name]  # InvalidName for a name MongoDB cannot hold: a data error
            try:
                await collection.insert_many(docs, ordered=False)
            except UnicodeEncodeError:
                await collection.insert_many([sanitize(d) for d in docs], ordered=False)
        except BulkWriteError as exc:
            return classify_write_errors(exc.details, positions)
        except Exception as exc:
            raise map_error(exc, f"insert into {name}", self.where) from exc
        return InsertOutcome()
