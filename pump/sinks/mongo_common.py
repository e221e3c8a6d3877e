"""What the Mongo pumps share: Tyk's connection settings, the client, documents, indexes, errors.

The three analytics pumps (``mongo``, ``mongo-pump-selective``, ``mongo-pump-aggregate``) and the
uptime pump all take Tyk's ``BaseMongoConf`` keys (tyk-pump.md §4 "Mongo family") and talk to the
server through one pymongo ``AsyncMongoClient`` each. This module owns:

* :class:`BaseMongoMeta` — the shared ``meta`` keys, validated, and :func:`client_options`, their
  translation into pymongo options (TLS verified unless the config says otherwise);
* :func:`to_document` / :func:`uptime_document` — records as Tyk's documents (lower-cased Go field
  names, Go's BSON integer widths) with a deterministic ``_id`` (:func:`object_id`), which is what
  makes a redelivered raw batch a no-op instead of a duplicate;
* :class:`MongoTarget` — connect, ping, best-effort indexes and capped collections, idempotent
  unordered inserts;
* :func:`map_error` — the one place where pymongo exceptions become the pump's delivery errors.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from bson import Int64, ObjectId
from pydantic import Field, SecretStr, field_validator

from pump.errors import BatchDataError, RetriableError, SinkError
from pump.record import Record, UptimeRecord
from pump.redact import SecretDsn, redact_url, scrub
from pump.sinks.base import SinkMeta
from pump.text import valid_utf8

log = logging.getLogger(__name__)

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

#: Tyk's defaults when the size keys are unset or 0.
DEFAULT_MAX_INSERT_BATCH_BYTES = 10 * MIB
DEFAULT_MAX_DOCUMENT_BYTES = 10 * MIB
DEFAULT_CAP_BYTES = 5 * GIB

#: Database used when ``mongo_url`` names none (Tyk's documented examples all use this name).
DEFAULT_DATABASE = "tyk_analytics"

#: What Tyk writes instead of the raw payloads of a record over ``max_document_size_bytes``
#: (base64 of "Document too large, not writing raw request and raw response!").
TOO_LARGE_RAW_RESPONSE = "RG9jdW1lbnQgdG9vIGxhcmdlLCBub3Qgd3JpdGluZyByYXcgcmVxdWVzdCBhbmQgcmF3IHJlc3BvbnNlIQ=="

#: ``mongo_db_type`` values (Tyk's ``MongoType``).
STANDARD_MONGO, AWS_DOCUMENT_DB, COSMOS_DB = 0, 1, 2

DUPLICATE_KEY = 11000
NOT_IMPLEMENTED = 238
INVALID_NAMESPACE = 73

#: MongoDB's limit on ``<database>.<collection>`` (4.4+), in UTF-8 bytes.
MAX_NAMESPACE_BYTES = 255

#: Server error codes that mean "this data can never be written" (split the batch, dead-letter the
#: culprit) rather than "try again later". Anything else is retried: a stalled pump is visible and
#: loses nothing, while a wrong "bad data" verdict would dead-letter good records.
DATA_ERROR_CODES = frozenset(
    {
        2,  # BadValue
        9,  # FailedToParse
        14,  # TypeMismatch ($inc on a non-number left by someone else)
        17,  # ProtocolError
        28,  # PathNotViable (a dotted key runs into a scalar)
        40,  # ConflictingUpdateOperators (two keys naming the same path)
        52,  # DollarPrefixedFieldName
        55,  # InvalidDBRef
        56,  # EmptyFieldName
        57,  # DottedFieldName
        121,  # DocumentValidationFailure
        10334,  # BSONObjectTooLarge
        17419,  # update result larger than 16 MB
        17420,  # same, older servers
    }
)

#: Error codes/texts of "the document is too large" — the ones self-healing reacts to. Tyk's three
#: texts (``pump.aggregate.buckets.SIZE_ERROR_MARKERS``) plus pymongo's client-side refusal.
SIZE_ERROR_CODES = frozenset({10334, 17419, 17420})
CLIENT_SIZE_MARKER = "BSON document too large"

_CONSISTENCY = {"": "primary", "strong": "primary", "monotonic": "primaryPreferred", "eventual": "nearest"}


# --------------------------------------------------------------------------- configuration


class BaseMongoMeta(SinkMeta):
    """Tyk's ``BaseMongoConf``: every Mongo pump's connection settings."""

    mongo_url: SecretDsn = Field(
        SecretStr(""), validate_default=True, description="mongodb:// or mongodb+srv:// URL, including the database name"
    )
    mongo_use_ssl: bool = Field(False, description="connect with TLS (certificates are verified unless told otherwise)")
    mongo_ssl_insecure_skip_verify: bool = Field(False, description="accept any server certificate and host name (insecure)")
    mongo_ssl_allow_invalid_hostnames: bool = Field(False, description="verify the certificate but not the host name")
    mongo_ssl_ca_file: str = Field("", description="PEM file of the CAs to trust")
    mongo_ssl_pem_keyfile: str = Field("", description="PEM file with the client certificate and key (mutual TLS)")
    mongo_db_type: Literal[0, 1, 2] = Field(0, description="0 MongoDB, 1 AWS DocumentDB, 2 Azure CosmosDB")
    omit_index_creation: bool = Field(False, description="never create indexes")
    mongo_session_consistency: str = Field("", description="strong (default), monotonic or eventual: read preference")
    driver: str = Field("", description="Tyk's Go driver choice (mongo-go or mgo); accepted, no effect here")
    mongo_direct_connection: bool = Field(False, description="talk only to the given host, no replica-set discovery")

    @field_validator("mongo_url")
    @classmethod
    def _url_required(cls, v: SecretStr) -> SecretStr:
        url = v.get_secret_value().strip()
        if not url:
            raise ValueError("required: the MongoDB URL including the database, e.g. mongodb://user:pass@host:27017/tyk_analytics")
        if not url.startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError(f"must start with mongodb:// or mongodb+srv:// (got {redact_url(url)!r})")
        return SecretStr(url)

    @field_validator("mongo_session_consistency")
    @classmethod
    def _consistency(cls, v: str) -> str:
        if v.lower() not in _CONSISTENCY:
            raise ValueError("must be one of strong, monotonic, eventual (or empty)")
        return v.lower()

    @field_validator("driver")
    @classmethod
    def _driver(cls, v: str) -> str:
        if v not in ("", "mongo-go", "mgo"):
            raise ValueError("must be mongo-go or mgo (or empty); either way this pump uses pymongo")
        return v


class SizedMongoMeta(BaseMongoMeta):
    """Size limits of the raw pumps (Tyk's ``MongoConf``/``MongoSelectiveConf``)."""

    max_insert_batch_size_bytes: int = Field(0, ge=0, description="bytes per insert call (Tyk's estimate); 0 = 10 MiB")
    max_document_size_bytes: int = Field(0, ge=0, description="bytes of raw request+response+1 KiB per record; 0 = 10 MiB")

    @property
    def batch_bytes(self) -> int:
        return self.max_insert_batch_size_bytes or DEFAULT_MAX_INSERT_BATCH_BYTES

    @property
    def document_bytes(self) -> int:
        return self.max_document_size_bytes or DEFAULT_MAX_DOCUMENT_BYTES


class CollectionMeta(SizedMongoMeta):
    """``mongo`` (and the uptime pump): one named collection, optionally capped."""

    collection_name: str = Field("", description="the collection every record goes to")
    collection_cap_enable: bool = Field(False, description="create the collection capped (only if it does not exist yet)")
    collection_cap_max_size_bytes: int = Field(0, ge=0, description="cap size in bytes; 0 = 5 GiB")

    @property
    def cap_bytes(self) -> int:
        return self.collection_cap_max_size_bytes or DEFAULT_CAP_BYTES


def database_name(url: str) -> str:
    """The database named in the URL path, or :data:`DEFAULT_DATABASE`."""
    path = urlsplit(url).path.lstrip("/")
    return path.split("/", 1)[0] or DEFAULT_DATABASE


def client_options(meta: BaseMongoMeta, timeout: float = 0) -> dict[str, Any]:
    """pymongo keyword options for Tyk's settings (pure, so it is unit-tested).

    TLS is verified by default: only ``mongo_ssl_insecure_skip_verify`` (everything) or
    ``mongo_ssl_allow_invalid_hostnames`` (host name only) relax it. Options already in the URL
    win when the config leaves them unset. ``timeout`` is the pump's ``timeout`` (Tyk passes it to
    the driver as the connection timeout); without one, an unreachable server is reported after
    10 s so the delivery layer can back off instead of hanging.
    """
    wait_ms = int((timeout or 10) * 1000)
    opts: dict[str, Any] = {
        "tz_aware": True,
        "serverSelectionTimeoutMS": wait_ms,
        "connectTimeoutMS": wait_ms,
        "appname": "pump",
    }
    if meta.mongo_use_ssl:
        opts["tls"] = True
    if meta.mongo_ssl_insecure_skip_verify:
        opts["tlsInsecure"] = True
    elif meta.mongo_ssl_allow_invalid_hostnames:
        opts["tlsAllowInvalidHostnames"] = True
    if meta.mongo_ssl_ca_file:
        opts["tlsCAFile"] = meta.mongo_ssl_ca_file
    if meta.mongo_ssl_pem_keyfile:
        opts["tlsCertificateKeyFile"] = meta.mongo_ssl_pem_keyfile
    if meta.mongo_direct_connection:
        opts["directConnection"] = True
    if meta.mongo_session_consistency:
        opts["readPreference"] = _CONSISTENCY[meta.mongo_session_consistency]
    return opts


# --------------------------------------------------------------------------- errors


class InvalidCollection(BatchDataError):
    """A collection name the driver or server refuses (built from record data, e.g. an org id
    with ``$`` or over the namespace limit): a data error of the records bound for it only."""


def collection_name_problem(database: str, name: str) -> str:
    """Why ``name`` cannot be a collection of ``database`` ("" if it can), decided before any I/O:
    pymongo's client-side rules (``InvalidName``), UTF-8 and MongoDB's 255-byte namespace. A
    server with stricter rules (FerretDB: 235 characters) answers code 73, mapped to
    :class:`InvalidCollection` too."""
    if not name or ".." in name:
        return f"invalid collection name {name[:80]!r}: empty, or contains '..'"
    if "$" in name or "\x00" in name:
        return f"invalid collection name {name[:80]!r}: contains '$' or a NUL character"
    if name[0] == "." or name[-1] == ".":
        return f"invalid collection name {name[:80]!r}: starts or ends with '.'"
    try:
        size = len(database.encode()) + 1 + len(name.encode())
    except UnicodeEncodeError:
        return f"invalid collection name {name[:80]!r}: not valid UTF-8"
    if size > MAX_NAMESPACE_BYTES:
        return f"invalid collection name {name[:80]!r}…: namespace of {size} bytes, at most {MAX_NAMESPACE_BYTES}"
    return ""


def is_size_error(exc: BaseException) -> bool:
    """True when the server (or pymongo before sending) refused a document as too large."""
    from pymongo.errors import DocumentTooLarge, OperationFailure

    from pump.aggregate.buckets import is_size_error as tyk_size_text

    if isinstance(exc, DocumentTooLarge):
        return True
    if isinstance(exc, OperationFailure) and exc.code in SIZE_ERROR_CODES:
        return True
    text = str(exc)
    return CLIENT_SIZE_MARKER in text or tyk_size_text(text)


def map_error(exc: BaseException, action: str, where: str = "") -> SinkError:
    """The pump's delivery error for a pymongo exception (the only place that decides).

    * connection trouble, timeouts, elections, throttling, auth and unknown server errors →
      :class:`RetriableError`: the records wait safely in Redis and the write is repeated;
    * the data itself refused (too large, invalid keys, type clashes, un-encodable strings) →
      :class:`BatchDataError`: the delivery layer splits the batch to isolate the record;
    * a collection name refused (``InvalidName``, code 73) → :class:`InvalidCollection`: the pumps
      that name collections after record data dead-letter the records bound for it.
    """
    from bson.errors import InvalidDocument
    from pymongo.errors import DocumentTooLarge, InvalidName, OperationFailure, PyMongoError

    if isinstance(exc, SinkError):
        return exc
    place = f" ({where})" if where else ""
    text = f"mongo {action} failed{place}: {type(exc).__name__}: {_short(str(exc))}"
    if isinstance(exc, InvalidName) or (isinstance(exc, OperationFailure) and exc.code == INVALID_NAMESPACE):
        return InvalidCollection(text)
    if isinstance(exc, (DocumentTooLarge, InvalidDocument, UnicodeEncodeError)):
        return BatchDataError(text)
    if isinstance(exc, OperationFailure) and exc.code in DATA_ERROR_CODES:
        return BatchDataError(text)
    if isinstance(exc, PyMongoError):
        return RetriableError(text)
    if isinstance(exc, (OSError, TimeoutError)):
        return RetriableError(text)
    return BatchDataError(text)


def _short(text: str, limit: int = 400) -> str:
    text = scrub(text.replace("\n", " "))
    return text if len(text) <= limit else text[:limit] + "…"


# --------------------------------------------------------------------------- documents


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a batch's documents are built.

    Building thousands of small dicts triggers a collection every few hundred allocations, and
    each one walks every live record and document: measured, that is three quarters of the cost
    of :func:`to_document` over a 5000-record batch (≈17–25 µs/record instead of ≈4.5). The
    documents hold no reference cycles, so nothing is lost by collecting once afterwards. Only
    for code with no ``await`` inside: nothing else runs meanwhile.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def object_id(record_id: str, timestamp_ns: int) -> ObjectId:
    """A deterministic ObjectId for a record: 4 bytes of its timestamp, 8 of its id.

    Tyk's documents have ObjectId ``_id``s (the Dashboard's log browser looks records up by them),
    so the record id is folded into one rather than stored as a string: the timestamp keeps the
    natural ObjectId order, the 64 bits of the record hash keep it unique, and the same record
    always gets the same ``_id`` — a second insert is a duplicate-key no-op.
    """
    seconds = (timestamp_ns // 1_000_000_000) & 0xFFFFFFFF
    tail = record_id[:16] if len(record_id) >= 16 else hashlib.blake2b(record_id.encode(), digest_size=8).hexdigest()
    try:
        return ObjectId(f"{seconds:08x}{tail}")
    except Exception:  # not hex: hash whatever the id is
        return ObjectId(f"{seconds:08x}{hashlib.blake2b(record_id.encode(), digest_size=8).hexdigest()}")


def _record_key(r: Record) -> str:
    """The record id, or for a record built in-process without one, a hash of its content."""
    return r.record_id or _content_key(r)


def _content_key(r: Record | UptimeRecord) -> str:
    return hashlib.blake2b(repr(r.to_json()).encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def to_document(r: Record) -> dict[str, Any]:
    """A record as Tyk's Mongo pumps store it (tyk-pump.md §2.1, "Mongo" column).

    Lower-cased Go field names (``rawpath``, ``geo.country.isocode``, ``network.closedconnection``,
    ``expireAt``), Go ``int64`` fields as BSON int64 and ``int`` fields as int32 (what Tyk's
    mgo-compatible codec writes), nil tags and city names as empty array/document (the codec's
    nil-as-empty rule), and no ``api_schema``, GraphQL/MCP stats or collection name (``bson:"-"``).
    """
    return {
        "_id": object_id(_record_key(r), r.timestamp_ns),
        "method": r.method,
        "host": r.host,
        "path": r.path,
        "rawpath": r.raw_path,
        "contentlength": Int64(r.content_length),
        "useragent": r.user_agent,
        "day": r.day,
        "month": r.month,
        "year": r.year,
        "hour": r.hour,
        "responsecode": r.response_code,
        "apikey": r.api_key,
        "timestamp": r.timestamp,
        "apiversion": r.api_version,
        "apiname": r.api_name,
        "apiid": r.api_id,
        "orgid": r.org_id,
        "oauthid": r.oauth_id,
        "requesttime": Int64(r.request_time),
        "rawrequest": r.raw_request,
        "rawresponse": r.raw_response,
        "ipaddress": r.ip_address,
        "geo": {
            "country": {"isocode": r.geo_country_iso_code},
            "city": {"geonameid": r.geo_city_geoname_id, "names": r.geo_city_names or {}},
            "location": {
                "latitude": float(r.geo_location_latitude),
                "longitude": float(r.geo_location_longitude),
                "timezone": r.geo_location_time_zone,
            },
        },
        "network": {
            "openconnections": Int64(r.network_open_connections),
            "closedconnection": Int64(r.network_closed_connections),
            "bytesin": Int64(r.network_bytes_in),
            "bytesout": Int64(r.network_bytes_out),
        },
        "latency": {
            "total": Int64(r.latency_total),
            "upstream": Int64(r.latency_upstream),
            "gateway": Int64(r.latency_gateway),
        },
        "tags": list(r.tags) if r.tags else [],
        "alias": r.alias,
        "trackpath": bool(r.track_path),
        "expireAt": r.expire_at,
        "originalpath": r.original_path,
        "listenpath": r.listen_path,
    }


def uptime_document(u: UptimeRecord) -> dict[str, Any]:
    """A host-checker result as Tyk's uptime pump stores it (``UptimeReportData``)."""
    return {
        "_id": object_id(u.record_id or _content_key(u), u.timestamp_ns),
        "url": u.url,
        "requesttime": Int64(u.request_time),
        "responsecode": u.response_code,
        "tcperror": bool(u.tcp_error),
        "servererror": bool(u.server_error),
        "day": u.day,
        "month": u.month,
        "year": u.year,
        "hour": u.hour,
        "minute": u.minute,
        "timestamp": u.timestamp,
        "expireAt": u.expire_at,
        "apiid": u.api_id,
        "orgid": u.org_id,
    }


def skipped_by_raw_pumps(r: Record) -> bool:
    """Network-only (``-1``) and MCP records never become raw documents (tyk-pump.md §4)."""
    return r.response_code == -1 or r.is_mcp


def estimated_size(r: Record) -> int:
    """Tyk's size estimate of a record's document: the raw payloads plus 1 KiB of the rest."""
    return len(r.raw_request) + len(r.raw_response) + KIB


def strip_raw_payloads(doc: dict[str, Any]) -> None:
    """What Tyk's ``mongo`` pump does to an oversize document: drop the raw request, replace the
    raw response by a note."""
    doc["rawrequest"] = ""
    doc["rawresponse"] = TOO_LARGE_RAW_RESPONSE


def chunk_by_size(sizes: Sequence[int], limit: int) -> list[range]:
    """Consecutive runs of items whose summed estimate stays within ``limit`` (Tyk's
    ``AccumulateSet``, without its bug of dropping the last run); an item larger than the limit
    gets a run of its own."""
    runs: list[range] = []
    start = 0
    total = 0
    for i, size in enumerate(sizes):
        if i > start and total + size > limit:
            runs.append(range(start, i))
            start, total = i, 0
        total += size
    if start < len(sizes):
        runs.append(range(start, len(sizes)))
    return runs


#: Every string (keys too) made valid UTF-8: BSON refuses the decoder's surrogate escapes.
sanitize = valid_utf8


# --------------------------------------------------------------------------- indexes


@dataclass(frozen=True)
class IndexSpec:
    """One index as Tyk creates it (``keys`` in order; ``ttl`` makes it a TTL index)."""

    keys: tuple[tuple[str, int], ...]
    name: str = ""
    ttl: bool = False


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


# --------------------------------------------------------------------------- the connection


@dataclass
class InsertOutcome:
    """What an unordered insert left undone: batch index → reason refused for good, and batch
    indexes that failed transiently."""

    rejected: dict[int, str] = field(default_factory=dict)
    retry: list[int] = field(default_factory=list)

    def merge(self, other: InsertOutcome) -> None:
        self.rejected.update(other.rejected)
        self.retry.extend(other.retry)


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
                extra={"pump": self.pump, "collection": name, "error": _short(str(exc), 200)},
            )
        except Exception as exc:
            raise map_error(exc, "create collection", self.where) from exc

    async def _create_index(self, name: str, spec: IndexSpec) -> None:
        from pymongo.errors import OperationFailure

        options: dict[str, Any] = {}
        if spec.name:
            options["name"] = spec.name
        if spec.ttl:
            options["expireAfterSeconds"] = 0
        try:
            await self.db[name].create_index(list(spec.keys), **options)
        except OperationFailure as exc:
            what = "TTL index (documents will not expire by themselves)" if spec.ttl else "index"
            log.warning(
                f"The server refused to create a {what}; continuing without it.",
                extra={"pump": self.pump, "collection": name, "keys": [k for k, _ in spec.keys], "error": _short(str(exc), 200)},
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


def classify_write_errors(details: Mapping[str, Any], positions: Sequence[int]) -> InsertOutcome:
    """Sort a ``BulkWriteError``'s per-document errors (pure; unit-tested).

    Duplicate keys are successes of an earlier delivery. Data error codes are rejections for good;
    anything else is retried. A write-concern error means the server could not confirm the write:
    retry it all (the inserts are idempotent).
    """
    if details.get("writeConcernErrors"):
        first = details["writeConcernErrors"][0]
        raise RetriableError(f"mongo insert not acknowledged by the write concern: {_short(str(first.get('errmsg', first)))}")
    outcome = InsertOutcome()
    for err in details.get("writeErrors", ()):
        code = err.get("code")
        if code == DUPLICATE_KEY:
            continue
        index = err.get("index", -1)
        if not 0 <= index < len(positions):
            continue
        pos = positions[index]
        if code in DATA_ERROR_CODES:
            outcome.rejected[pos] = f"mongo refused the document: E{code} {_short(str(err.get('errmsg', '')), 300)}"
        else:
            outcome.retry.append(pos)
    return outcome
