"""Request bodies: Tyk's record JSON, Go's ``encoding/json`` rules, and how records are framed
and cut into requests. Pure code; which encoder a ``format`` uses is :mod:`pump.sinks.http.formats`.

``ndjson`` and ``json-array`` carry Tyk's record JSON (``Record.to_json``, the document the
stdout and CSV pumps print), optionally cut down to ``fields``. The collector templates
(``splunk``, ``logzio``, ``moesif``) build the documents Tyk's own pumps send and encode them as
Go's ``encoding/json`` does — map keys sorted, ``<``, ``>`` and ``&`` escaped, whole floats
without ``.0`` — so a collector sees the same bytes from us as from Tyk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pump.record import JSON_GROUPS, Record
from pump.text import json_bytes

Encoder = Callable[[Record], bytes]

#: Top-level keys of Tyk's record JSON (``Record.to_json``), for ``fields`` of ndjson/json-array.
RECORD_KEYS: tuple[str, ...] = tuple(JSON_GROUPS)


@dataclass(frozen=True, slots=True)
class Framing:
    """How encoded records are joined into one body: ``start`` + items joined by ``sep`` + ``end``."""

    content_type: str
    start: bytes = b""
    sep: bytes = b""
    end: bytes = b""

    def body(self, items: Sequence[bytes]) -> bytes:
        return self.start + self.sep.join(items) + self.end

    def size(self, count: int, item_bytes: int) -> int:
        return len(self.start) + item_bytes + len(self.sep) * max(0, count - 1) + len(self.end)


NDJSON = Framing("application/x-ndjson", sep=b"\n", end=b"\n")
JSON_ARRAY = Framing("application/json", start=b"[", sep=b",", end=b"]")
#: Splunk HEC: events written one after another (what Tyk's batch mode sends).
CONCATENATED = Framing("application/json")

FRAMINGS = {"ndjson": NDJSON, "json-array": JSON_ARRAY, "splunk": CONCATENATED, "logzio": NDJSON, "moesif": JSON_ARRAY}


@dataclass(frozen=True)
class Options:
    """What shapes each document besides the format: ``fields`` to keep, and the Splunk pump's
    API-key obfuscation and tag filter (Tyk applies those to its Splunk events only)."""

    fields: tuple[str, ...] = ()
    obfuscate_api_keys: bool = False
    obfuscate_api_keys_length: int = 0
    ignore_tag_prefix_list: tuple[str, ...] = ()
    moesif: Any = field(default=None)  # pump.sinks.http.moesif_events.MoesifOptions for the moesif format


# --- Go's encoding/json -----------------------------------------------------------------------

_GO_ESCAPES = ((b"<", b"\\u003c"), (b">", b"\\u003e"), (b"&", b"\\u0026"), ("\u2028".encode(), b"\\u2028"), ("\u2029".encode(), b"\\u2029"))


def go_escape(data: bytes) -> bytes:
    """Go's HTML-safe escaping of JSON text. These characters can only occur inside strings of
    the encoder's output, so replacing them everywhere is exact."""
    for raw, escaped in _GO_ESCAPES:
        if raw in data:
            data = data.replace(raw, escaped)
    return data


def go_float(x: float) -> float | int:
    """A float64 as Go prints it in JSON: a whole number has no ``.0`` (``0``, ``51``)."""
    return int(x) if x.is_integer() and abs(x) < 1e21 else x


def go_json(doc: Any) -> bytes:
    """``json.Marshal`` of a document whose maps are already in Go's (sorted) key order."""
    return go_escape(json_bytes(doc))


# --- record documents -------------------------------------------------------------------------


def record_encoder(keys: Sequence[str]) -> Encoder:
    """Tyk's record JSON, whole or cut down to ``keys`` (in the order given)."""
    if not keys:
        return lambda r: json_bytes(r.to_json())
    wanted = tuple(keys)

    def encode(r: Record) -> bytes:
        doc = r.to_json()
        return json_bytes({k: doc[k] for k in wanted})

    return encode


# --- requests ---------------------------------------------------------------------------------


def chunks(items: Iterable[tuple[int, bytes]], framing: Framing, max_records: int, max_bytes: int) -> Iterator[list[tuple[int, bytes]]]:
    """Cut (position, encoded record) pairs into request bodies of at most ``max_records``
    records and ``max_bytes`` bytes (0 = no limit). A record larger than ``max_bytes`` on its own
    travels alone: the server decides (a 413 makes it a data error, dead-lettered alone)."""
    chunk: list[tuple[int, bytes]] = []
    size = 0
    for item in items:
        n = len(item[1])
        if chunk and ((max_records and len(chunk) >= max_records) or (max_bytes and framing.size(len(chunk) + 1, size + n) > max_bytes)):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += n
    if chunk:
        yield chunk
