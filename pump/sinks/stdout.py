"""``stdout``: one line per record on standard output (tyk-pump.md §4 Stdout).

``format: json`` prints what Tyk prints — a logrus JSON line
``{"level":"info","msg":"","time":<now, UTC>,"<log_field_name>":<record JSON>}`` — and, unless
``use_legacy_payload_format``, flattens the raw request/response onto one line (headers'
``\\n`` → space, ``\\r``/``\\t`` dropped, a valid JSON body compacted). Any other format prints a
short human-readable line per record. Delivery is at-least-once.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TextIO

from pump.record import Record
from pump.sinks.base import SinkBatch, SinkContext, SinkMeta, SinkSpec
from pump.text import json_bytes


class Meta(SinkMeta):
    format: str = "text"
    log_field_name: str = "tyk-analytics-record"
    use_legacy_payload_format: bool = False


def _reject_constant(name: str) -> None:
    raise ValueError(name)


def _json_valid(text: str) -> bool:
    """Go's ``json.Valid``: strict JSON (no NaN/Infinity)."""
    try:
        json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        return False
    return True


def compact_json(text: str) -> str:
    """Go's ``json.Compact``: drop insignificant whitespace, keep every token as written."""
    out: list[str] = []
    in_string = escaped = False
    for ch in text:
        if in_string:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
            out.append(ch)
        elif ch not in " \t\n\r":
            out.append(ch)
    return "".join(out)


def flatten(text: str) -> str:
    """``\\n`` → space, ``\\r`` and ``\\t`` removed."""
    return text.replace("\r", "").replace("\t", "").replace("\n", " ")


def transform_http_payload(raw: str) -> str:
    """One-line rendering of an HTTP message, as Tyk's stdout pump does (§7.2 case 20)."""
    if not raw:
        return raw
    headers, sep, body = raw.partition("\r\n\r\n")
    if sep and _json_valid(body):
        return f"{flatten(headers)} {compact_json(body)}"
    return flatten(raw)


def json_line(r: Record, field: str, clean: bool, now: str) -> bytes:
    doc = r.to_json()
    if clean:
        doc["raw_request"] = transform_http_payload(doc["raw_request"])
        doc["raw_response"] = transform_http_payload(doc["raw_response"])
    line = {"level": "info", "msg": "", "time": now, field: doc}
    return json_bytes(line) + b"\n"  # text that was not UTF-8 is printed as U+FFFD, never refused


_LINE_BREAKS = str.maketrans({"\n": "\\n", "\r": "\\r"})


def text_line(r: Record) -> bytes:
    """One record, one line: a newline or carriage return inside a value (a hostile path, host or
    id) is printed escaped as ``\\n``/``\\r`` rather than splitting the record in two."""
    line = (
        f"{r.timestamp.isoformat()} {r.method} {r.host}{r.path} {r.response_code} "
        f"api={r.api_id} org={r.org_id} key={r.api_key or '-'} latency_ms={r.latency_total}"
    )
    if "\n" in line or "\r" in line:
        line = line.translate(_LINE_BREAKS)
    return (line + "\n").encode("utf-8", "replace")


class StdoutSink:
    def __init__(self, name: str, meta: Meta, stream: TextIO | None = None) -> None:
        self.name = name
        self.meta = meta
        self.stream = stream

    async def start(self) -> None:
        return None

    async def write(self, batch: SinkBatch) -> None:
        data = self.render(batch.records)
        await asyncio.to_thread(self._emit, data)

    def render(self, records: Sequence[Record]) -> bytes:
        if self.meta.format == "json":
            now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
            clean = not self.meta.use_legacy_payload_format
            return b"".join(json_line(r, self.meta.log_field_name, clean, now) for r in records)
        return b"".join(text_line(r) for r in records)

    def _emit(self, data: bytes) -> None:
        stream = self.stream or sys.stdout
        stream.buffer.write(data) if hasattr(stream, "buffer") else stream.write(data.decode())
        stream.flush()

    async def close(self) -> None:
        return None

    async def check(self) -> None:
        return None


def build(ctx: SinkContext, meta: Meta) -> StdoutSink:
    return StdoutSink(ctx.name, meta)


SPEC = SinkSpec(meta=Meta, build=build)
