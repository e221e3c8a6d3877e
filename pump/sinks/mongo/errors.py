"""The one place where pymongo exceptions become the pump's delivery errors (:func:`map_error`),
and the sorting of an unordered insert's per-document errors (:func:`classify_write_errors`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pump.errors import BatchDataError, RetriableError, SinkError
from pump.redact import scrub

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
    text = f"mongo {action} failed{place}: {type(exc).__name__}: {short(str(exc))}"
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


def short(text: str, limit: int = 400) -> str:
    text = scrub(text.replace("\n", " "))
    return text if len(text) <= limit else text[:limit] + "…"


@dataclass
class InsertOutcome:
    """What an unordered insert left undone: batch index → reason refused for good, and batch
    indexes that failed transiently."""

    rejected: dict[int, str] = field(default_factory=dict)
    retry: list[int] = field(default_factory=list)

    def merge(self, other: InsertOutcome) -> None:
        self.rejected.update(other.rejected)
        self.retry.extend(other.retry)


def classify_write_errors(details: Mapping[str, Any], positions: Sequence[int]) -> InsertOutcome:
    """Sort a ``BulkWriteError``'s per-document errors (pure; unit-tested).

    Duplicate keys are successes of an earlier delivery. Data error codes are rejections for good;
    anything else is retried. A write-concern error means the server could not confirm the write:
    retry it all (the inserts are idempotent).
    """
    if details.get("writeConcernErrors"):
        first = details["writeConcernErrors"][0]
        raise RetriableError(f"mongo insert not acknowledged by the write concern: {short(str(first.get('errmsg', first)))}")
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
            outcome.rejected[pos] = f"mongo refused the document: E{code} {short(str(err.get('errmsg', '')), 300)}"
        else:
            outcome.retry.append(pos)
    return outcome
