"""Record times, and their text forms, in one place: Go's formats and the caches that make them cheap.

A record's times travel as unix nanoseconds (Go's ``[sec, nsec]`` pair); sinks print them as Go
would (``time.RFC3339Nano`` for JSON and Elasticsearch, ``time.Time.String()`` for CSV, StatsD
and syslog), as UTC text for SQL, or as a local date for sharded tables and rolling indexes.
Hundreds of thousands of records a minute share a few seconds, so each form caches the part that
only changes with the second, the minute or the 15-minute block, and never builds a datetime on
a cache hit. Every cache is bounded (cleared when it grows past a few thousand entries).

Zones: Tyk decodes into the pump host's local zone (``LOCAL_ZONE``; containers are normally UTC)
unless a protobuf record names one. Go's zero time (year 1) cannot move west of UTC in Python, so
times that would fall off the calendar stay in UTC instead of raising.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: Go's zero ``time.Time`` as unix seconds (0001-01-01T00:00:00Z).
GO_ZERO_UNIX = -62135596800
#: Years 1..9999, what Python's datetime can hold: the last second of 9999.
MAX_UNIX = 253402300799
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _local_zone() -> tzinfo:
    """The zone records are shown in: ``TZ`` if set, else the host's ``/etc/localtime``, else UTC."""
    name = os.environ.get("TZ", "").lstrip(":")
    try:
        if name:
            return ZoneInfo(name)
        if os.path.exists("/etc/localtime"):
            with open("/etc/localtime", "rb") as fh:
                return ZoneInfo.from_file(fh, key="localtime")
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    return UTC


LOCAL_ZONE: tzinfo = _local_zone()

# --------------------------------------------------------------------------- datetimes

_SECOND_CACHE: dict[tuple[int, tzinfo], datetime] = {}


def time_from_unix(sec: int, nsec: int = 0, zone: tzinfo | None = None) -> datetime:
    """Build an aware datetime from Go's ``[sec, nsec]`` pair, in ``zone`` (default: the pump's).

    Records arrive thousands per second with the same second, so the whole-second datetime is
    cached and only the microseconds are filled in.
    """
    zone = zone or LOCAL_ZONE
    key = (sec, zone)
    base = _SECOND_CACHE.get(key)
    if base is None:
        dt = EPOCH + timedelta(seconds=sec)
        try:
            base = dt.astimezone(zone)
        except (OverflowError, ValueError):
            base = dt
        if len(_SECOND_CACHE) > 4096:
            _SECOND_CACHE.clear()
        _SECOND_CACHE[key] = base
    return base.replace(microsecond=nsec // 1000) if nsec >= 1000 else base


ZERO_TIME = time_from_unix(GO_ZERO_UNIX, 0, UTC)


def unix_ns(dt: datetime, nsec_remainder: int = 0) -> int:
    """Unix nanoseconds of an aware datetime (plus sub-microsecond nanoseconds)."""
    delta = dt - EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000 + nsec_remainder


def shard_suffix(day: datetime | date) -> str:
    """``YYYYMMDD`` of a date, always 8 digits (year 1 → ``00010101``): the suffix of every
    sharded SQL table (raw, aggregate and uptime pumps), so the same date names the same day in
    each. Not ``%Y``, which does not zero-pad years below 1000 on glibc."""
    return f"{day.year:04d}{day.month:02d}{day.day:02d}"


# --------------------------------------------------------------------------- RFC 3339 (JSON, ES)


def zone_suffix(dt: datetime) -> str:
    """Go's ``Z07:00``: ``Z`` for a zero offset, else ``±hh:mm`` of the offset's whole minutes
    (truncated toward zero, so an offset under a minute west of UTC prints ``+00:00`` as in Go)."""
    total = int((dt.utcoffset() or timedelta(0)).total_seconds())
    if total == 0:
        return "Z"
    minutes = abs(total) // 60
    sign = "-" if total < 0 and minutes else "+"
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _fraction(ns: int) -> str:
    """Go's ``.999999999`` fraction: up to nine digits, trailing zeros dropped, none if zero."""
    nanos = ns % 1_000_000_000
    return f".{nanos:09d}".rstrip("0") if nanos else ""


def go_rfc3339(dt: datetime, ns: int) -> str:
    """Go's ``time.RFC3339Nano`` of ``dt`` (its own zone) with the nanoseconds of ``ns``, as
    ``json.Marshal`` prints it (``Z`` for UTC). For a record's times prefer :func:`rfc3339_nano`,
    which builds no datetime."""
    return f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}{_fraction(ns)}{zone_suffix(dt)}"


#: Seconds per cached block of time. Every modern zone offset is a multiple of 15 minutes, so
#: within an aligned 15-minute block a zone's offset and local date are constant.
_BLOCK = 900

#: (``YYYY-MM-DDTHH:``, first minute, zone suffix, ``YYYY.MM.DD``, ``YYYYMMDD``) per block and zone.
_BLOCKS: dict[tuple[int, tzinfo | None], tuple[str, int, str, str, str] | None] = {}


def _block(block: int, zone: tzinfo | None) -> tuple[str, int, str, str, str] | None:
    """The cached parts of a 15-minute block, or ``None`` when the zone's offset is odd (historic
    local mean time) or changes inside it."""
    start = time_from_unix(block * _BLOCK, 0, zone)
    end = time_from_unix(block * _BLOCK + _BLOCK - 1, 0, zone)
    offset = start.utcoffset() or timedelta(0)
    if offset != (end.utcoffset() or timedelta(0)) or offset.total_seconds() % _BLOCK:
        return None
    head = f"{start.year:04d}-{start.month:02d}-{start.day:02d}T{start.hour:02d}:"
    dotted = f"{start.year:04d}.{start.month:02d}.{start.day:02d}"
    return head, start.minute, zone_suffix(start), dotted, shard_suffix(start)


def _block_parts(sec: int, zone: tzinfo | None) -> tuple[str, int, str, str, str] | None:
    block = sec // _BLOCK
    key = (block, zone)
    try:
        return _BLOCKS[key]
    except KeyError:
        if len(_BLOCKS) > 4096:
            _BLOCKS.clear()
        parts = _BLOCKS[key] = _block(block, zone)
        return parts


def time_parts(sec: int, zone: tzinfo | None) -> tuple[str, str, str]:
    """(``YYYY-MM-DDTHH:MM:SS``, zone suffix, ``YYYY.MM.DD``) of a unix second in ``zone``.

    Records of a busy gateway are spread over time, so a per-second cache would miss on almost
    every record, and building a datetime per record costs more than the rest of a document.
    The date, hour and offset are cached per 15-minute block; minutes and seconds are arithmetic."""
    parts = _block_parts(sec, zone)
    if parts is not None:
        head, minute, suffix, day, _ = parts
        m, s = divmod(sec % _BLOCK, 60)
        return f"{head}{minute + m:02d}:{s:02d}", suffix, day
    dt = time_from_unix(sec, 0, zone)
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}",
        zone_suffix(dt),
        f"{dt.year:04d}.{dt.month:02d}.{dt.day:02d}",
    )


def rfc3339_nano(ns: int, zone: tzinfo | None = None) -> str:
    """Go's ``time.RFC3339Nano`` of unix nanoseconds in ``zone`` (default: the pump's), as
    ``json.Marshal`` prints a ``time.Time`` (Tyk's JSON ``timestamp``, ES ``@timestamp``)."""
    sec, frac = divmod(ns, 1_000_000_000)
    head, suffix, _ = time_parts(sec, zone)
    if frac:
        return f"{head}.{frac:09d}".rstrip("0") + suffix
    return head + suffix


def record_day(ns: int, zone: tzinfo | None) -> str:
    """``YYYY.MM.DD`` of unix nanoseconds in ``zone`` (Tyk's rolling index suffix)."""
    return time_parts(ns // 1_000_000_000, zone)[2]


def shard_day(ns: int, zone: tzinfo | None) -> str:
    """``YYYYMMDD`` of unix nanoseconds in ``zone`` (the pump's when ``None``): the date Tyk's
    SQL sharding names a table by."""
    sec = ns // 1_000_000_000
    parts = _block_parts(sec, zone)
    if parts is not None:
        return parts[4]
    return shard_suffix(time_from_unix(sec, 0, zone))


# --------------------------------------------------------------------------- time.Time.String()

#: (``YYYY-MM-DD HH:MM:``, `` -0700 MST``) per unix minute and zone: a busy gateway's records are
#: a few milliseconds apart, the bench's a second or two, so a per-second cache missed on nearly
#: every record while a minute serves dozens to thousands.
_GO_STRING_CACHE: dict[tuple[int, tzinfo | None], tuple[str, str]] = {}
#: (``YYYY-MM-DD HH:``, first minute, `` -0700 MST``) per 15-minute block and zone, or ``None``.
_GO_BLOCKS: dict[tuple[int, tzinfo | None], tuple[str, int, str] | None] = {}
_SECONDS = tuple(f"{s:02d}" for s in range(60))


def _go_suffix(dt: datetime) -> str:
    """`` -0700 MST`` of ``time.Time.String()``: a zone without a name (or a numeric one) prints
    its offset, and UTC+0 prints ``UTC``."""
    off = int((dt.utcoffset() or timedelta(0)).total_seconds())
    sign = "+" if off >= 0 else "-"
    hh, mm = abs(off) // 3600, (abs(off) % 3600) // 60
    name = dt.tzname() or ""
    if not name or name.startswith(("+", "-")) or (name.startswith("UTC") and name != "UTC"):
        name = f"{sign}{hh:02d}{mm:02d}" if (hh, mm) != (0, 0) else "UTC"
    return f" {sign}{hh:02d}{mm:02d} {name}"


def _go_block(block: int, zone: tzinfo | None) -> tuple[str, int, str] | None:
    """The cached parts of a 15-minute block for ``time.Time.String()``, or ``None`` when the
    zone's offset is odd (historic local mean time) or its offset or name changes inside it."""
    start = time_from_unix(block * _BLOCK, 0, zone)
    end = time_from_unix(block * _BLOCK + _BLOCK - 1, 0, zone)
    offset = start.utcoffset() or timedelta(0)
    if offset != (end.utcoffset() or timedelta(0)) or offset.total_seconds() % _BLOCK or start.tzname() != end.tzname():
        return None
    return f"{start.year:04d}-{start.month:02d}-{start.day:02d} {start.hour:02d}:", start.minute, _go_suffix(start)


def _go_minute(minute: int, zone: tzinfo | None) -> tuple[str, str] | None:
    """(``2006-01-02 15:04:``, `` -0700 MST``) of a unix minute: arithmetic on its 15-minute
    block's cached date, hour and zone (no datetime built), or ``None`` for a block the zone's
    offset does not keep whole."""
    block = minute * 60 // _BLOCK
    key = (block, zone)
    try:
        parts = _GO_BLOCKS[key]
    except KeyError:
        if len(_GO_BLOCKS) > 4096:
            _GO_BLOCKS.clear()
        parts = _GO_BLOCKS[key] = _go_block(block, zone)
    if parts is None:
        return None
    head, first, suffix = parts
    return f"{head}{first + (minute * 60 - block * _BLOCK) // 60:02d}:", suffix


def go_time_string(ns: int, zone: tzinfo | None = None) -> str:
    """Go's ``time.Time.String()`` of unix nanoseconds ``ns`` in ``zone`` (default: the pump's):
    ``2006-01-02 15:04:05.999999999 -0700 MST``.

    The CSV pump prints two per record: cached per (minute, zone), the seconds from a table, a
    datetime built only in a block the zone's offset does not keep whole (:func:`_go_minute`)."""
    sec, frac = divmod(ns, 1_000_000_000)
    minute, second = divmod(sec, 60)
    key = (minute, zone)
    parts = _GO_STRING_CACHE.get(key)
    if parts is None:
        parts = _go_minute(minute, zone)
        if parts is None:
            dt = time_from_unix(sec, 0, zone)
            parts = f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d} {dt.hour:02d}:{dt.minute:02d}:", _go_suffix(dt)
            second = dt.second
        else:
            if len(_GO_STRING_CACHE) > 4096:
                _GO_STRING_CACHE.clear()
            _GO_STRING_CACHE[key] = parts
    if frac:
        return f"{parts[0]}{_SECONDS[second]}.{frac:09d}".rstrip("0") + parts[1]
    return parts[0] + _SECONDS[second] + parts[1]


# --------------------------------------------------------------------------- SQL text (UTC)

_UNIX_DAY0 = date(1970, 1, 1).toordinal()
_MINUTE_TEXT: dict[int, str] = {}
_SECOND_TEXT: tuple[str, ...] = tuple(f"{s:02d}." for s in range(60))


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
    return ts_text(unix_ns(dt))
