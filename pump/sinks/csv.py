"""``csv``: Tyk's CSV pump — one file per wall-clock hour, 42 columns, Tyk's value formatting.

File ``<csv_dir>/<Year>-<MonthName>-<Day>-<Hour>.csv`` (no zero padding, e.g.
``2024-January-5-9.csv``), header written when the file is created, rows as Tyk's
``GetLineValues`` renders them (tyk-pump.md §4 CSV): Go ``time.Time.String()`` times, month names,
city names as sorted ``k:v;k:v``, coordinates truncated to unsigned integers the way Go converts
a float64 to a uint64, tags joined with ``;``.

Delivery to a file is at-least-once: a batch redelivered after a crash appends its rows again.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import Field

from pump.errors import RetriableError
from pump.record import LOCAL_ZONE, Record, go_time_string
from pump.sinks.base import SinkBatch, SinkContext, SinkMeta

MONTHS = ("", "January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December")

HEADER = [
    "Method", "Host", "Path", "RawPath", "ContentLength", "UserAgent", "Day", "Month", "Year", "Hour",
    "ResponseCode", "APIKey", "TimeStamp", "APIVersion", "APIName", "APIID", "OrgID", "OauthID",
    "RequestTime", "RawRequest", "RawResponse", "IPAddress", "GeoData.Country.ISOCode",
    "GeoData.City.GeoNameID", "GeoData.City.Names", "GeoData.Location.Latitude",
    "GeoData.Location.Longitude", "GeoData.Location.TimeZone", "NetworkStats.OpenConnections",
    "NetworkStats.ClosedConnection", "NetworkStats.BytesIn", "NetworkStats.BytesOut", "Latency.Total",
    "Latency.Upstream", "Latency.Gateway", "Tags", "Alias", "TrackPath", "ExpireAt", "ApiSchema",
    "OriginalPath", "ListenPath",
]  # fmt: skip


class Meta(SinkMeta):
    csv_dir: str = Field("./", description="directory of the hourly files; created if missing")


def go_month(month: int) -> str:
    """Go's ``time.Month.String()``: a name for 1..12, ``%!Month(n)`` otherwise."""
    return MONTHS[month] if 1 <= month <= 12 else f"%!Month({month})"


def go_uint(value: float) -> str:
    """``strconv.FormatUint(uint64(f), 10)`` as compiled for amd64: truncate toward zero; a
    negative value wraps around as a two's-complement uint64."""
    if value != value or value in (float("inf"), float("-inf")):
        return str(1 << 63)
    n = int(value)
    if n >= 1 << 64 or n < -(1 << 63):
        return str(1 << 63)
    return str(n % (1 << 64))


def names_text(names: dict[str, str] | None) -> str:
    return ";".join(f"{k}:{v}" for k, v in sorted((names or {}).items()))


def u64(n: int) -> str:
    """Tyk prints integer columns (all but the latencies) as ``uint64``: a negative value wraps
    (−1 → 2⁶⁴−1); the latencies print signed."""
    return str(n) if n >= 0 else str(n % (1 << 64))


def csv_row(r: Record) -> list[str]:
    """One record as Tyk's ``AnalyticsRecord.GetLineValues()`` renders it."""
    return [
        r.method, r.host, r.path, r.raw_path, u64(r.content_length), r.user_agent, u64(r.day),
        go_month(r.month), u64(r.year), u64(r.hour), u64(r.response_code), r.api_key,
        go_time_string(r.timestamp_ns, r.tz), r.api_version, r.api_name, r.api_id, r.org_id,
        r.oauth_id, u64(r.request_time), r.raw_request, r.raw_response, r.ip_address,
        r.geo_country_iso_code, u64(r.geo_city_geoname_id), names_text(r.geo_city_names),
        go_uint(r.geo_location_latitude), go_uint(r.geo_location_longitude), r.geo_location_time_zone,
        u64(r.network_open_connections), u64(r.network_closed_connections), u64(r.network_bytes_in),
        u64(r.network_bytes_out), str(r.latency_total), str(r.latency_upstream), str(r.latency_gateway),
        ";".join(r.tags or ()), r.alias, "true" if r.track_path else "false",
        go_time_string(r.expire_at_ns, r.tz), r.api_schema, r.original_path, r.listen_path,
    ]  # fmt: skip


_SPECIAL = ('"', "\n", "\r")


def csv_text(records: Sequence[Record]) -> str:
    """The CSV lines of a batch. Rows with no comma, quote or newline inside a value are joined
    directly (the C csv writer costs more than the whole row otherwise); the others go through
    the csv module for standard quoting."""
    out: list[str] = []
    slow: Any = None  # a csv writer, created on the first row that needs quoting
    buf: io.StringIO | None = None
    for r in records:
        row = csv_row(r)
        line = ",".join(row)
        if line.count(",") == 41 and not any(ch in line for ch in _SPECIAL):
            out.append(line)
            continue
        if slow is None:
            buf = io.StringIO()
            # The writer quotes a value holding a character of its line terminator: with "\r\n"
            # both CR and LF are quoted (as Go's encoding/csv does); the terminator is cut off.
            slow = csv.writer(buf, lineterminator="\r\n")
        assert buf is not None
        buf.seek(0)
        buf.truncate()
        slow.writerow(row)
        out.append(buf.getvalue()[:-2])
    out.append("")
    return "\n".join(out)


def file_name(now: datetime) -> str:
    """Tyk's hourly file name for a wall-clock time."""
    return f"{now.year}-{MONTHS[now.month]}-{now.day}-{now.hour}.csv"


class CsvSink:
    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self.directory = directory

    async def start(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RetriableError(f"cannot create csv_dir {str(self.directory)!r}: {exc.strerror}") from exc

    async def write(self, batch: SinkBatch) -> None:
        # Formatting is CPU work: done here, on the loop, it does not fight a thread for the GIL.
        # Only the file I/O (and its fsync) goes to a thread.
        await asyncio.to_thread(self._append, csv_text(batch.records))

    def _append(self, text: str) -> None:
        path = self.directory / file_name(datetime.now(LOCAL_ZONE))
        try:
            with open(path, "a", encoding="utf-8", errors="surrogateescape", newline="") as fh:
                if fh.tell() == 0:
                    fh.write(",".join(HEADER) + "\n")
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise RetriableError(f"cannot write {str(path)!r}: {exc.strerror}") from exc

    async def close(self) -> None:
        return None

    async def check(self) -> None:
        await self.start()
        if not os.access(self.directory, os.W_OK):
            raise RetriableError(f"csv_dir {str(self.directory)!r} is not writable")


def build(ctx: SinkContext, meta: Meta) -> CsvSink:
    return CsvSink(ctx.name, Path(meta.csv_dir))
