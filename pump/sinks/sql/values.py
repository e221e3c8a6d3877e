"""Values as the SQL pumps write them: timestamps as text, text PostgreSQL accepts, COPY fields.

Used by both backends, so a row reads the same whichever database holds it.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UNIX_DAY0 = date(1970, 1, 1).toordinal()
_MINUTE_TEXT: dict[int, str] = {}
_SECOND_TEXT: tuple[str, ...] = tuple(f"{s:02d}." for s in range(60))

#: What PostgreSQL text cannot hold is replaced by this character (see :func:`clean`).
REPLACEMENT = "\ufffd"


def _minute_text(minute: int) -> str:
    days, mod = divmod(minute, 1440)
    d = date.fromordinal(days + _UNIX_DAY0) if -_UNIX_DAY0 < days <= 2932896 else date(9999, 12, 31)
    hh, mm = divmod(mod, 60)
    text = f"{d.year:04d}-{d.month:02d}-{d.day:02d} {hh:02d}:{mm:02d}:"
    if len(_MINUTE_TEXT) > 8192:
        _MINUTE_TEXT.clear()
    _MINUTE_TEXT[minute] = text
    return text


def ts_text(ns: int) -> str:
    """Unix nanoseconds as ``YYYY-MM-DD HH:MM:SS.ffffff+00:00`` (UTC, microseconds).

    The same text is a valid ``timestamptz`` literal for PostgreSQL and sorts correctly as an
    SQLite TEXT column. It runs twice per raw record, so the text up to the minute is cached and
    the seconds come from a table: building a datetime per call cost more than the rest of a row."""
    sec, rem = divmod(ns, 1_000_000_000)
    minute, second = divmod(sec, 60)
    head = _MINUTE_TEXT.get(minute) or _minute_text(minute)
    return f"{head}{_SECOND_TEXT[second]}{rem // 1000:06d}+00:00"


def dt_text(dt: datetime) -> str:
    """An aware datetime in the same text form as :func:`ts_text`."""
    delta = dt - _EPOCH
    return ts_text((delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000)


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
