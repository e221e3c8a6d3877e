"""Event kinds: every record is a ``request``, a ``fault`` or ``throttled`` (WSO2's three streams).

WSO2 API Manager publishes a request stream, a fault stream (backend errors, timeouts) and a
throttle stream (application, resource, API or hard limits exceeded). A Tyk record carries no such
flag, so the kind is derived from what the gateway does write:

* **throttled** — ``429`` (Tyk's key and organisation rate limits answer ``429 Rate limit
  exceeded``), or a ``403`` whose recorded response says a quota was exceeded (Tyk answers a key
  quota with ``403 Quota exceeded`` and an organisation quota with ``403 This organisation quota
  has been exceeded``). The 403 test needs the response body, which the gateway's error handler
  records only with detailed recording (and only in gateways that write the error response into
  ``raw_response``: older ones leave it empty); without it a quota breach is an ordinary
  ``request`` (a refused one).
* **fault** — ``5xx`` (including the gateway's own ``502``/``504`` for an upstream it could not
  reach) and ``0``: a record with no status at all, which is what a dropped connection leaves.
* **request** — everything else, including 4xx refusals and the network-only ``-1`` records that
  Tyk writes for connection statistics (they are not failed requests).

The ES pump's older ``index_per_kind`` (``requests``/``errors``/``throttled``, by code only) is a
different split and is kept as it was; ``event_kind_index`` uses this one.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from functools import lru_cache

from pump.record import Record

REQUEST, FAULT, THROTTLED = "request", "fault", "throttled"
#: Every kind, in the order they are documented and written.
KINDS: tuple[str, ...] = (REQUEST, FAULT, THROTTLED)

#: Lower-cased phrases of Tyk's quota and rate-limit refusals (gateway/mw_rate_limiting.go,
#: gateway/mw_organisation_activity.go).
_LIMIT_PHRASES: tuple[bytes, ...] = (
    b"quota exceeded",
    b"quota has been exceeded",
    b"rate limit exceeded",
    b"rate limit has been exceeded",
)
#: Bytes of a raw response looked at: the status line, headers and the start of the body.
_PEEK = 4096
#: Characters of the (base64) ``raw_response`` that hold those bytes; only this head is cached,
#: so the cache stays small however large the recorded responses are.
_HEAD = _PEEK * 4 // 3 + 4


def event_kind(record: Record) -> str:
    """The kind of one record (module docstring for the rules)."""
    code = record.response_code
    if code == 429:
        return THROTTLED
    if code >= 500 or code == 0:
        return FAULT
    if code == 403 and record.raw_response:
        return THROTTLED if _says_limit(record.raw_response[:_HEAD]) else REQUEST
    return REQUEST


def event_kinds(records: Sequence[Record]) -> list[str]:
    """The kinds of a batch, in order (one classification per record)."""
    return [event_kind(r) for r in records]


@lru_cache(maxsize=1024)
def _says_limit(head: str) -> bool:
    """True if the head of a recorded response (base64 of the HTTP response, or text a previous
    step decoded) carries one of Tyk's limit messages. Cached: the gateway's refusals repeat."""
    try:
        data = base64.b64decode(head[: len(head) - len(head) % 4], validate=True)
    except (binascii.Error, ValueError):
        data = head.encode("utf-8", "surrogateescape")
    lowered = data[:_PEEK].lower()
    return any(phrase in lowered for phrase in _LIMIT_PHRASES)
