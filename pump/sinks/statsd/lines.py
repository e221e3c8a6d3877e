"""What records become in StatsD and DogStatsD: metric lines. Pure code.

StatsD (Tyk's ``statsd`` pump): per record and per timing in ``fields``, a timing
``<field>.<tag values joined by '.'>:<ms>|ms``. Each tag value is Tyk's: the mapping value as JSON,
lower-cased, with quotes and spaces removed; ``path`` is method + path without trailing slashes
unless ``separated_method``. With no ``tags`` the name is the field alone (Tyk leaves a trailing
dot). DogStatsD (Tyk's ``dogstatsd``): per record a histogram
``<namespace>.request_time:<ms>|h[|@rate]|#tyk-pump,<tags>`` with Tyk's default tags or the chosen
ones. Characters that would break a line (``|``, ``,``, ``#``, newlines) become ``_`` in tags.
Text that was not UTF-8 (kept by the decoder as surrogate escapes) is sent as U+FFFD, so a
receiver that needs UTF-8 names and labels (statsd_exporter, the Datadog agent) keeps the line.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from pump.gotime import go_time_string
from pump.record import Record
from pump.sinks.statsd.config import DogMeta, Meta
from pump.text import valid_utf8

_HTML = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def utf8(line: str) -> bytes:
    """``line`` as UTF-8; text that was not UTF-8 as U+FFFD (checked only when encoding fails)."""
    try:
        return line.encode()
    except UnicodeEncodeError:
        return str(valid_utf8(line)).encode()


def go_json(value: Any) -> str:
    """``json.Marshal`` of a string or number as Go prints it (HTML characters escaped)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).translate(_HTML)


def statsd_mapping(r: Record, separated_method: bool) -> dict[str, Any]:
    """Tyk's ``getMappings`` of a record."""
    path = r.path.rstrip("/")
    sec = r.timestamp_ns // 1_000_000_000
    mapping: dict[str, Any] = {  # (go_time_string is cached per second)
        "path": path if separated_method else r.method + path,
        "response_code": r.response_code,
        "api_key": r.api_key,
        "time_stamp": go_time_string(sec * 1_000_000_000, None).replace(":", "-"),
        "api_version": r.api_version,
        "api_name": r.api_name,
        "api_id": r.api_id,
        "org_id": r.org_id,
        "oauth_id": r.oauth_id,
        "raw_request": r.raw_request,
        "request_time": r.request_time,
        "latency_total": r.latency_total,
        "latency_upstream": r.latency_upstream,
        "latency_gateway": r.latency_gateway,
        "raw_response": r.raw_response,
        "ip_address": r.ip_address,
    }
    if separated_method:
        mapping["method"] = r.method
    return mapping


def statsd_lines(meta: Meta) -> Callable[[Sequence[Record]], Iterator[bytes]]:
    tags, fields, separated = meta.tags, meta.fields, meta.separated_method
    prefix = f"{meta.prefix}." if meta.prefix else ""
    cache: dict[tuple[Any, ...], str] = {}

    def suffix_of(mapping: dict[str, Any]) -> str:
        # The same few tag values repeat over a batch (APIs, codes, paths): JSON-encode each
        # combination once. Bounded, so unbounded tags (time_stamp, ip_address) cost no memory.
        key = tuple(mapping.get(t) for t in tags)
        text = cache.get(key)
        if text is None:
            text = ".".join(go_json(v).lower() for v in key).replace('"', "").replace(" ", "")
            text = _line_safe(text)
            if len(cache) > 10000:
                cache.clear()
            cache[key] = text
        return text

    def lines(records: Sequence[Record]) -> Iterator[bytes]:
        for r in records:
            mapping = statsd_mapping(r, separated)
            if tags:
                suffix = suffix_of(mapping)
                names = [f"{prefix}{f}.{suffix}" for f in fields]
            else:
                names = [f"{prefix}{f}" for f in fields]
            for f, name in zip(fields, names, strict=True):
                yield utf8(f"{name}:{int(mapping[f])}|ms")

    return lines


_BAD = str.maketrans({"|": "_", ",": "_", "#": "_", "\n": "_", "\r": "_", ":": "_"})
_BAD_NAME = str.maketrans({"|": "_", "#": "_", "\n": "_", "\r": "_", ":": "_"})


def _line_safe(name: str) -> str:
    return name.translate(_BAD_NAME)


def _tag(key: str, value: str) -> str:
    return f"{key}:{value.translate(_BAD)}"


def dog_tags(r: Record, chosen: Sequence[str]) -> list[str]:
    """Tyk's DogStatsD tags of a record (its default set when none are chosen)."""
    if not chosen:
        tags = [
            _tag("path", r.path), _tag("method", r.method), f"response_code:{r.response_code}",
            _tag("api_version", r.api_version), _tag("api_name", r.api_name), _tag("api_id", r.api_id),
            _tag("org_id", r.org_id), f"tracked:{'true' if r.track_path else 'false'}",
        ]  # fmt: skip
        if r.oauth_id:
            tags.append(_tag("oauth_id", r.oauth_id))
        return tags
    out = []
    for t in chosen:
        if t == "response_code":
            out.append(f"response_code:{r.response_code}")
        elif t == "tracked":
            out.append(f"tracked:{'true' if r.track_path else 'false'}")
        elif t == "path":
            out.append(_tag("path", r.path.rstrip("/")))
        elif t == "oauth_id":
            if r.oauth_id:
                out.append(_tag("oauth_id", r.oauth_id))
        else:
            out.append(_tag(t, str(getattr(r, t))))
    return out


def dog_lines(meta: DogMeta, rng: random.Random | None = None) -> Callable[[Sequence[Record]], Iterator[bytes]]:
    name = f"{meta.namespace}.request_time"
    rate = meta.rate
    rate_part = "" if rate >= 1 else f"|@{rate:g}"
    chosen = meta.tags
    draw = (rng or random.Random()).random

    def lines(records: Sequence[Record]) -> Iterator[bytes]:
        for r in records:
            if rate < 1 and draw() > rate:
                continue  # client-side sampling, as datadog-go: the server scales by 1/rate
            tags = ",".join(["tyk-pump", *dog_tags(r, chosen)])
            yield utf8(f"{name}:{r.request_time}|h{rate_part}|#{tags}")

    return lines
