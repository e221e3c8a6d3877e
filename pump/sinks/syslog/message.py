"""What one record becomes on the wire: an RFC 5424 message, framed for its transport. Pure code.

``format: tyk`` (the default) is the text Tyk's pump sends: Go's ``fmt.Sprintf("%s", map)`` of
nineteen fields — keys sorted, ``map[k:v k:v]``, the timestamp as Go's ``time.Time.String()``,
newlines of the raw request and response escaped as ``\\n``, and integers printed the way Go's
``%s`` verb prints a non-string (``%!s(int=200)``), so parsers written for Tyk's lines keep
working. ``format: json`` sends the same fields (and ``tags``) as one JSON object instead.

The header is RFC 5424's, not the BSD-style one of Go's ``log/syslog``: ``<PRI>1 TIMESTAMP
HOSTNAME APP-NAME PROCID MSGID [SD] MSG``. TIMESTAMP is the record's time (UTC, microseconds), so a
backlog drained late keeps the request times; the structured data ``[pump@32473 id="…"]`` carries
the record id for deduplication (32473 is the enterprise number RFC 5612 reserves for examples).
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from typing import Any

import orjson

from pump.gotime import go_time_string
from pump.record import Record
from pump.sinks.message import tyk_message
from pump.sinks.syslog.config import Meta
from pump.text import json_bytes

SD_ID = "pump@32473"

#: Tyk's fields, with the Go type ``%s`` prints for the non-strings.
_INT = {"response_code": "int", "request_time_ms": "int64", "content_length": "int64"}


def tyk_fields(r: Record) -> dict[str, Any]:
    """The nineteen fields Tyk's syslog text prints: Tyk's message without ``tags``, the time as
    nanoseconds (printed by :func:`tyk_text`), newlines of the raw request and response escaped."""
    fields = tyk_message(r)
    del fields["tags"]
    fields["timestamp"] = r.timestamp_ns
    fields["raw_request"] = r.raw_request.replace("\n", "\\n")
    fields["raw_response"] = r.raw_response.replace("\n", "\\n")
    return fields


def tyk_text(r: Record) -> str:
    """Tyk's message text (see the module docstring)."""
    fields = tyk_fields(r)
    parts = []
    for key in sorted(fields):
        value = fields[key]
        if key == "timestamp":
            text = go_time_string(value, r.tz)
        elif key in _INT:
            text = f"%!s({_INT[key]}={value})"
        else:
            text = value
        parts.append(f"{key}:{text}")
    return "map[" + " ".join(parts) + "]"


def json_text(r: Record) -> bytes:
    return json_bytes(tyk_message(r), option=orjson.OPT_SORT_KEYS)  # text that was not UTF-8 as U+FFFD


def sd_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


_SECONDS: dict[int, str] = {}


def rfc5424_time(ns: int) -> str:
    """RFC 5424 TIMESTAMP in UTC with microseconds (its longest TIME-SECFRAC)."""
    sec, frac = divmod(ns, 1_000_000_000)
    head = _SECONDS.get(sec)
    if head is None:
        if len(_SECONDS) > 4096:
            _SECONDS.clear()
        u = datetime.fromtimestamp(sec, UTC)
        head = _SECONDS[sec] = f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}"
    return f"{head}.{frac // 1000:06d}Z"


class Encoder:
    """RFC 5424 messages of records, framed, with the header parts fixed once."""

    def __init__(self, meta: Meta) -> None:
        host = meta.hostname or (socket.gethostname().split(" ")[0] or "-")
        self.head = f"<{meta.log_level}>1 "
        self.tail = f" {host[:255]} {meta.tag} {os.getpid()} - "
        self.json = meta.format == "json"
        self.octets = meta.transport != "udp" and meta.framing == "octet-counting"
        self.lf = meta.transport != "udp" and meta.framing == "lf"
        self.limit = meta.message_limit

    def message(self, r: Record) -> bytes:
        sd = f'[{SD_ID} id="{sd_escape(r.record_id)}"]' if r.record_id else "-"
        head = f"{self.head}{rfc5424_time(r.timestamp_ns)}{self.tail}{sd} ".encode()
        # Tyk's %s writes a string's bytes as they came: bytes that were not UTF-8 go out unchanged.
        body = json_text(r) if self.json else tyk_text(r).encode("utf-8", "surrogateescape")
        if self.lf:
            body = body.replace(b"\n", b"\\n")  # a newline would end the message early
        return head + body

    def frame(self, message: bytes) -> bytes:
        if self.octets:
            return b"%d %s" % (len(message), message)
        if self.lf:
            return message + b"\n"
        return message
