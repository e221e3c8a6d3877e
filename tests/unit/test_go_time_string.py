"""Go's ``time.Time.String()`` of a record's times (CSV, StatsD, syslog, Prometheus): the cached
15-minute-block arithmetic must print what a datetime per second prints, in every zone."""

from __future__ import annotations

import functools
import random
from datetime import UTC, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import pytest

from pump import gotime
from pump.gotime import GO_ZERO_UNIX, MAX_UNIX, go_time_string, time_from_unix

ZONES: list[tzinfo | None] = [
    None,
    UTC,
    timezone(timedelta(hours=5, minutes=30)),
    timezone(-timedelta(hours=3, minutes=30)),
    timezone(timedelta(seconds=-37)),
    timezone(timedelta(hours=2), "CEST"),
    *(ZoneInfo(n) for n in ("Europe/London", "Europe/Dublin", "America/New_York", "America/St_Johns", "Australia/Lord_Howe",
                            "Asia/Kathmandu", "Pacific/Chatham", "Africa/Casablanca", "Asia/Tokyo", "America/Sao_Paulo")),
]  # fmt: skip


def reference(ns: int, zone: tzinfo | None) -> str:
    """A datetime per second, as Go's String() reads: date, time, fraction, offset, zone name."""
    sec, frac = divmod(ns, 1_000_000_000)
    dt = time_from_unix(sec, 0, zone)
    off = int((dt.utcoffset() or timedelta(0)).total_seconds())
    sign = "+" if off >= 0 else "-"
    hh, mm = abs(off) // 3600, (abs(off) % 3600) // 60
    name = dt.tzname() or ""
    if not name or name.startswith(("+", "-")) or (name.startswith("UTC") and name != "UTC"):
        name = f"{sign}{hh:02d}{mm:02d}" if (hh, mm) != (0, 0) else "UTC"
    text = f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d} {dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
    if frac:
        text += f".{frac:09d}".rstrip("0")
    return f"{text} {sign}{hh:02d}{mm:02d} {name}"


def _offset(sec: int, zone: tzinfo) -> timedelta | None:
    return time_from_unix(sec, 0, zone).utcoffset()


@functools.cache
def instants() -> tuple[int, ...]:
    """Seconds around every offset change of five zones in 1850..2040 (found every 20 days, then
    to the second by bisection), at the calendar's ends, and random seconds from 1800 to 2100."""
    rng = random.Random(15)
    secs = [GO_ZERO_UNIX + d for d in range(0, 86400 * 2, 1799)] + [MAX_UNIX - d for d in range(0, 86400 * 2, 1799)]
    secs += [rng.randrange(-5_364_662_400, 4_102_444_800) for _ in range(2000)]
    step = 20 * 86400
    for name in ("Europe/London", "America/New_York", "Australia/Lord_Howe", "Africa/Casablanca"):
        zone = ZoneInfo(name)
        for lo in range(-3_786_825_600, 2_208_988_800, step):
            hi = lo + step
            if _offset(lo, zone) == _offset(hi, zone):
                continue
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if _offset(mid, zone) == _offset(lo, zone) else (lo, mid)
            secs += [hi + d for d in range(-1800, 1801, 61)]
    return tuple(secs)


@pytest.mark.parametrize("zone", ZONES, ids=str)
def test_block_arithmetic_prints_what_a_datetime_per_second_prints(zone: tzinfo | None) -> None:
    gotime._GO_STRING_CACHE.clear()
    gotime._GO_BLOCKS.clear()
    for sec in instants():
        for frac in (0, 123_456_780):
            ns = sec * 1_000_000_000 + frac
            assert go_time_string(ns, zone) == reference(ns, zone), (zone, sec, frac)


def test_a_miss_builds_no_datetime_inside_a_whole_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """Records spread over hours miss the per-second cache: the block's parts serve them."""
    zone = ZoneInfo("Europe/London")
    base = 1_700_000_100 // 900 * 900
    go_time_string(base * 1_000_000_000, zone)
    calls = []
    monkeypatch.setattr(gotime, "time_from_unix", lambda *a: calls.append(a) or time_from_unix(*a))
    texts = [go_time_string((base + s) * 1_000_000_000 + 7, zone) for s in range(1, 900)]
    assert calls == []
    assert texts[-1] == reference((base + 899) * 1_000_000_000 + 7, zone)
