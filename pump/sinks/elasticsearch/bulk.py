"""The ``_bulk`` NDJSON protocol, shared by Elasticsearch 5–9 and OpenSearch 1–2. Pure code.

Every document is sent with ``create`` and a fixed ``_id``: a document that is already there
answers ``409 version_conflict_engine_exception``, which means "already indexed" and counts as
written. That is what makes a redelivered batch (after a timeout, a crash, a retry of part of a
bulk) impossible to duplicate, where Tyk's ``index`` without an id adds a copy each time.

Per-item outcomes decide what the delivery layer does (``pump.errors``): 429 and 5xx items are
retried, 400 items (mapping and parse errors) are dead-lettered with the server's reason, and
anything else that is not a success (403 blocked index, 404 index missing with auto-creation off)
is retried, because it is the cluster's state, not the record, that is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from pump.errors import BatchDataError, RejectedRecords, RetriableError
from pump.text import json_bytes

#: Asks the server to echo only what we read: per item the status and, on failure, the error.
#: (Positions are kept: every item still has its status, so item i is document i.)
BULK_FILTER = "errors,items.*.status,items.*.error"

OK, RETRY, REJECT = 0, 1, 2

_PLAIN_ID = re.compile(r"[0-9A-Za-z_.\-]{1,512}\Z")


@dataclass(slots=True)
class Item:
    """One document ready to send: its position in the batch, NDJSON lines and size."""

    pos: int
    index: str
    doc_id: str
    action: bytes
    body: bytes

    @property
    def size(self) -> int:
        return len(self.action) + len(self.body) + 2


def action_line(index: str, doc_id: str, doc_type: str | None = None) -> bytes:
    """The ``create`` metadata line. Index names are validated (no quotes, no control
    characters), so the common case is formatted directly; odd ids go through the JSON encoder."""
    if doc_type is None and _PLAIN_ID.match(doc_id):
        return f'{{"create":{{"_index":"{index}","_id":"{doc_id}"}}}}'.encode()
    meta: dict[str, str] = {"_index": index}
    if doc_type is not None:
        meta["_type"] = doc_type
    if doc_id:
        meta["_id"] = doc_id
    return orjson.dumps({"create": meta})


def encode_document(doc: dict[str, Any]) -> bytes:
    """The document's JSON; text that was not UTF-8 is written with U+FFFD (as Tyk's Go client
    does) instead of the record being refused."""
    return json_bytes(doc)


def bulk_body(items: Sequence[Item]) -> bytes:
    """The NDJSON request body: action and source lines, each ending in a newline."""
    parts: list[bytes] = []
    for it in items:
        parts.append(it.action)
        parts.append(it.body)
    parts.append(b"")
    return b"\n".join(parts)


def chunks(items: Iterable[Item], max_actions: int, max_bytes: int) -> Iterator[list[Item]]:
    """Cut items into ``_bulk`` requests of at most ``max_actions`` documents and ``max_bytes``
    bytes (0 = no limit). A document larger than ``max_bytes`` travels alone rather than never."""
    chunk: list[Item] = []
    size = 0
    for it in items:
        n = it.size
        if chunk and ((max_actions and len(chunk) >= max_actions) or (max_bytes and size + n > max_bytes)):
            yield chunk
            chunk, size = [], 0
        chunk.append(it)
        size += n
    if chunk:
        yield chunk


# --- responses ----------------------------------------------------------------------------------


def error_text(error: Any) -> str:
    """``type: reason (caused by type: reason)`` of an Elasticsearch error object."""
    if not isinstance(error, dict):
        return str(error)[:500]
    text = f"{error.get('type', 'error')}: {error.get('reason', '')}".strip()
    cause = error.get("caused_by")
    if isinstance(cause, dict) and (cause.get("type") or cause.get("reason")):
        text += f" (caused by {cause.get('type', '')}: {cause.get('reason', '')})"
    return text[:1000]


def classify_item(status: int, error: Any) -> tuple[int, str]:
    """Outcome of one bulk item (or single-document request): OK, RETRY or REJECT, and why."""
    if 200 <= status < 300 or status == 409:
        return OK, ""  # 409 on create: a previous delivery already indexed this _id
    reason = f"{status} {error_text(error)}" if error is not None else f"HTTP {status}"
    if status in (400, 413):  # the document itself: a mapping/parse error, or too large on its own
        return REJECT, reason
    return RETRY, reason


def parse_bulk_response(content: bytes, expected: int) -> list[tuple[int, str]] | None:
    """Per-item outcomes of a ``_bulk`` answer; ``None`` when every item succeeded."""
    try:
        doc = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise RetriableError(f"_bulk answered with something that is not JSON ({exc}): {content[:200]!r}") from exc
    if not isinstance(doc, dict):
        raise RetriableError(f"unexpected _bulk answer: {content[:200]!r}")
    if doc.get("errors") is False:
        return None
    items = doc.get("items")
    if not isinstance(items, list) or len(items) != expected:
        got = len(items) if isinstance(items, list) else "no"
        raise RetriableError(f"_bulk answered with {got} items for {expected} documents; retrying the request")
    out: list[tuple[int, str]] = []
    for item in items:
        result: Any = next(iter(item.values()), {}) if isinstance(item, dict) and item else {}
        status = result.get("status") if isinstance(result, dict) else None
        if not isinstance(status, int):
            out.append((RETRY, f"item without a status: {str(item)[:200]}"))
            continue
        out.append(classify_item(status, result.get("error")))
    return out


def server_reason(content: bytes) -> str:
    """The error an Elasticsearch-API server put in a failed response body, short."""
    try:
        doc = orjson.loads(content)
    except orjson.JSONDecodeError:
        return content[:300].decode("utf-8", "replace").strip()
    if isinstance(doc, dict) and "error" in doc:
        return error_text(doc["error"])
    return str(doc)[:300]


def check_response(status: int, content: bytes, what: str) -> None:
    """Raise the error that tells the delivery layer what to do with a failed whole request."""
    if 200 <= status < 300:
        return
    reason = server_reason(content)
    if status == 413:
        # Smaller batches fit: the delivery layer splits on BatchDataError, down to one record.
        raise BatchDataError(f"{what}: 413 request too large for the server (lower bulk_config.bulk_size): {reason}")
    if status == 400:
        raise BatchDataError(f"{what}: 400 {reason}")
    if status == 401:
        raise RetriableError(f"{what}: 401 authentication failed; check auth_basic_* / auth_api_key* ({reason})")
    if status == 403:
        raise RetriableError(f"{what}: 403 forbidden; the credentials lack a privilege, or the index is blocked ({reason})")
    if status == 404:
        raise RetriableError(f"{what}: 404 not found; check elasticsearch_url (wrong path prefix?) ({reason})")
    raise RetriableError(f"{what}: HTTP {status} {reason}")


@dataclass
class Tally:
    """Outcomes of every document of one batch, turned into the delivery layer's language."""

    ok: int = 0
    rejected: dict[int, str] = field(default_factory=dict)
    retry: list[int] = field(default_factory=list)
    retry_reason: str = ""

    def add(self, pos: int, outcome: int, reason: str) -> None:
        if outcome == OK:
            self.ok += 1
        elif outcome == REJECT:
            self.rejected[pos] = reason
        else:
            self.retry.append(pos)
            self.retry_reason = self.retry_reason or reason

    def add_all(self, items: Sequence[Item], outcomes: list[tuple[int, str]] | None) -> None:
        self.add_positions([it.pos for it in items], outcomes)

    def add_positions(self, positions: Sequence[int], outcomes: list[tuple[int, str]] | None) -> None:
        """The outcomes of one ``_bulk`` request, by the batch positions of its documents."""
        if outcomes is None:
            self.ok += len(positions)
            return
        for pos, (outcome, reason) in zip(positions, outcomes, strict=True):
            self.add(pos, outcome, reason)

    def finish(self) -> None:
        """Return if every document is indexed; else raise what the delivery layer acts on.

        When nothing was written and everything is retriable the whole batch failed
        transiently (a blocked index, an overloaded node): raise ``RetriableError`` so the pump
        is marked failing and its new batches wait in Redis, instead of a tight partial retry.
        """
        if not self.rejected and not self.retry:
            return
        if self.retry and not self.rejected and self.ok == 0:
            raise RetriableError(f"{len(self.retry)} document(s) not indexed: {self.retry_reason}")
        raise RejectedRecords(
            self.rejected,
            sorted(self.retry),
            f"{self.ok} indexed, {len(self.rejected)} refused, {len(self.retry)} to retry"
            + (f" (e.g. {self.retry_reason})" if self.retry else ""),
        )
