"""Values as the SQL pumps write them: text PostgreSQL accepts, COPY fields (timestamps as text
are :func:`pump.gotime.ts_text`).

Used by both backends, so a row reads the same whichever database holds it.
"""

from __future__ import annotations

import json
from typing import Any

#: What PostgreSQL text cannot hold is replaced by this character (see :func:`clean`).
REPLACEMENT = "\ufffd"


def clean(text: str) -> str:
    """Text PostgreSQL accepts: NUL (impossible in PG text) and bytes that were not UTF-8 (kept
    by the decoder as surrogates) become U+FFFD. Used for both backends, so a row reads the same
    whichever database holds it."""
    if text.isascii():
        return text.replace("\x00", REPLACEMENT) if "\x00" in text else text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text.replace("\x00", REPLACEMENT) if "\x00" in text else text


def utf8(text: str) -> bytes:
    """Encode COPY text; undecodable bytes (surrogates) become U+FFFD instead of failing."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace").encode("utf-8")


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\x00": REPLACEMENT})


def copy_field(value: Any) -> str:
    """One value in PostgreSQL's COPY text format: backslash, tab, newline and CR escaped, NUL
    replaced (PostgreSQL text cannot hold it), booleans as ``t``/``f``, floats exact (repr)."""
    if isinstance(value, str):
        return value.translate(_COPY_ESCAPES)
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, float):
        return repr(value)
    return str(value)  # ints; aware datetimes as "YYYY-MM-DD HH:MM:SS[.ffffff]+HH:MM"


def copy_is_plain(text: str, lines: int, tabs_per_line: int) -> bool:
    """True if ``text`` (``lines`` lines of joined fields) needs no escaping: a few C-speed scans
    over the whole batch instead of a check per value."""
    return (
        text.count("\t") == lines * tabs_per_line
        and text.count("\n") == lines
        and "\\" not in text
        and "\r" not in text
        and "\x00" not in text
    )


_GO_HTML = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def _safe(value: Any) -> Any:
    """Nested ``None`` inside lists and maps as Go's ``MarshalSafeCollections`` prints them: the
    only nested collections Tyk has are lists (``Types`` values, a GraphQL error's ``path``)."""
    if isinstance(value, dict):
        return {str(k): ([] if v is None else _safe(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_safe(v) for v in value]
    return value


def go_safe_json(value: Any, empty: str) -> str:
    """A map or slice column as Tyk's gorm fork writes it: ``json.MarshalSafeCollections`` —
    ``empty`` (``{}`` or ``[]``) for nil, map keys sorted, nil collections inside as ``[]``,
    HTML characters escaped as Go's encoder does."""
    if value is None or (isinstance(value, dict | list) and not value):
        return empty
    text = json.dumps(_safe(value), ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=str)
    return text.translate(_GO_HTML)
