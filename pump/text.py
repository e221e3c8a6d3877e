"""Text as the decoder leaves it, made acceptable to strict encoders (JSON, BSON).

The decoders keep bytes that were not UTF-8 as surrogate escapes (``\\udc80``–``\\udcff``), so
the CSV and SQL sinks can write them back byte for byte. orjson and BSON accept only valid
UTF-8: for them such a character becomes U+FFFD, which is what Go's encoders (and so Tyk) write.
Called only after an encoder refused a value, so the common path pays nothing.
"""

from __future__ import annotations

from typing import Any

import orjson


def valid_utf8(value: Any) -> Any:
    """``value`` with every string, dict keys included, made valid UTF-8 (recursively)."""
    if isinstance(value, str):
        try:
            return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        except UnicodeEncodeError:  # a surrogate that stands for no byte
            return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {valid_utf8(k): valid_utf8(v) for k, v in value.items()}
    if isinstance(value, list):
        return [valid_utf8(v) for v in value]
    return value


def json_bytes(doc: Any, option: int | None = None) -> bytes:
    """``orjson.dumps(doc)``; if the document holds text that was not UTF-8, the same with that
    text as U+FFFD. What still cannot be JSON (an integer beyond 64 bits) raises as before."""
    try:
        return orjson.dumps(doc, option=option)
    except orjson.JSONEncodeError:
        return orjson.dumps(valid_utf8(doc), option=option)
