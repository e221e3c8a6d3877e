"""``csv``: Tyk's CSV pump — one file per wall-clock hour, 42 columns, Tyk's value formatting.

File ``<csv_dir>/<Year>-<MonthName>-<Day>-<Hour>.csv`` (no zero padding, e.g.
``2024-January-5-9.csv``), header written when the file is created, rows as Tyk's
``GetLineValues`` renders them (tyk-pump.md §4 CSV): Go ``time.Time.String()`` times, month names,
city names as sorted ``k:v;k:v``, coordinates truncated to unsigned integers the way Go converts
a float64 to a uint64, tags joined with ``;``.

Delivery to a file is at-least-once: a batch redelivered after a crash appends its rows again
(the rows written before the crash stay, so they appear twice). A crash in the middle of an
append leaves a partial last row; the next append truncates it first, so every row is whole.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from pydantic import Field

from pump import schema
from pump.errors import RetriableError
from pump.gotime import LOCAL_ZONE, go_time_string
from pump.record import Record
from pump.sinks.base import SinkBatch, SinkContext, SinkMeta, SinkSpec

log = logging.getLogger(__name__)

MONTHS = ("", "January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December")

#: Tyk's header: the ``csv`` column of :data:`pump.schema.FIELDS`, in table order.
HEADER = [f.csv for f in schema.columns("csv") if f.csv]

#: The latencies are the only integers Tyk prints signed (the rest go through ``uint64``).
_SIGNED = frozenset(("latency_total", "latency_upstream", "latency_gateway"))


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


def _cell(f: schema.Field) -> str:
    """The expression rendering one field as ``GetLineValues`` does (``r`` is the record)."""
    a = f"r.{f.attr}"
    if f.type == schema.STRING:
        return a
    if f.type in schema.INTEGERS and f.type != schema.MONTH:
        return f"str({a})" if f.attr in _SIGNED else f"u64({a})"
    return {
        schema.MONTH: f"go_month({a})",
        schema.TIME: f"go_time_string({a}_ns, r.tz)",
        schema.NAMES: f"names_text({a})",
        schema.FLOAT: f"go_uint({a})",
        schema.TAGS: f"';'.join({a} or ())",
        schema.BOOL: f"'true' if {a} else 'false'",
    }[f.type]


#: One record as Tyk's ``AnalyticsRecord.GetLineValues()`` renders it (one list display,
#: generated from the table: no loop or call per column).
csv_row: Callable[[Record], list[str]] = schema.compile_function(
    "csv_row",
    f"def csv_row(r):\n    return [{', '.join(_cell(f) for f in schema.columns('csv'))}]\n",
    {"u64": u64, "go_month": go_month, "go_time_string": go_time_string, "names_text": names_text, "go_uint": go_uint},
)


#: Go's ``unicode.IsSpace``: a field starting with one of these is quoted by encoding/csv.
#: (Not Python's ``str.isspace``, which also counts U+001C..U+001F and differs elsewhere.)
GO_SPACE = frozenset("\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000" + "".join(chr(c) for c in range(0x2000, 0x200B)))

#: Substrings whose absence proves an ASCII line needs no quoting (with 41 commas, no field holds
#: one): no quote or line break anywhere, no field starting with an ASCII space or being ``\.``.
#: ``in`` tests are ~50 ns each; a regex doing the same costs ~15 µs a line.
_ASCII_SUSPECTS = ('"', "\n", "\r", ", ", ",\t", ",\v", ",\f", ",\\.")


def _plain(line: str) -> bool:
    """True when ``line`` (a row joined with commas) is exactly what Go would write for it."""
    if line.count(",") != 41 or not line.isascii() or line[:1] in GO_SPACE or line.startswith("\\."):
        return False
    return not any(s in line for s in _ASCII_SUSPECTS)


def go_field(field: str) -> str:
    r"""One field as Go's ``encoding/csv`` Writer (``Comma`` ``,``, ``UseCRLF`` false) writes it.

    Quoted when it holds a comma, a quote, ``\r`` or ``\n``, when it starts with a character Go's
    ``unicode.IsSpace`` accepts, or when it is exactly ``\.`` (PostgreSQL's end-of-data marker);
    never when empty. Inside quotes only ``"`` is escaped (doubled); ``\r`` and ``\n`` are kept as
    they are. A byte that is not UTF-8 (a surrogate escape here) is never a space, as in Go.
    """
    if not field:
        return field
    if field == "\\." or field[0] in GO_SPACE or any(ch in field for ch in ',"\r\n'):
        return '"' + field.replace('"', '""') + '"'
    return field


def go_csv_line(row: Sequence[str]) -> str:
    """A row as Go's ``csv.Writer.Write`` writes it, without the final newline."""
    return ",".join(go_field(f) for f in row)


def csv_text(records: Sequence[Record]) -> str:
    r"""The CSV lines of a batch, each ending in ``\n``, quoted exactly as Go's encoding/csv does,
    so every line reads back (with any CSV reader) as the 42 fields it was made of, whatever
    bytes a record holds. Rows that need no quoting are joined directly."""
    out: list[str] = []
    for r in records:
        row = csv_row(r)
        line = ",".join(row)
        if not _plain(line):
            line = go_csv_line(row)
        out.append(line)
    out.append("")
    return "\n".join(out)


def file_name(now: datetime) -> str:
    """Tyk's hourly file name for a wall-clock time."""
    return f"{now.year}-{MONTHS[now.month]}-{now.day}-{now.hour}.csv"


def complete_length(fh: BinaryIO, size: int) -> int:
    """The length of the file's longest prefix made of whole rows.

    A row ends at a ``\n`` outside quotes; a ``\n`` inside a quoted field is data. Go's quoting
    doubles every quote inside a field, so a position is outside quotes exactly when the number of
    ``"`` before it is even: one pass counting quotes finds the last row boundary.
    """
    fh.seek(0)
    quotes = 0
    boundary = 0
    offset = 0
    while offset < size:
        chunk = fh.read(min(1 << 20, size - offset))
        if not chunk:
            break
        start = 0
        while True:
            nl = chunk.find(b"\n", start)
            if nl < 0:
                quotes += chunk.count(b'"', start)
                break
            quotes += chunk.count(b'"', start, nl)
            if quotes % 2 == 0:
                boundary = offset + nl + 1
            start = nl + 1
        offset += len(chunk)
    return boundary


class CsvSink:
    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self.directory = directory
        #: (path, size) the last append of this process left the file at: a file still that size
        #: needs no scan before the next append.
        self._clean: tuple[Path, int] | None = None

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
        """Append whole rows, after cutting off a torn last row.

        A process killed in the middle of an append leaves part of a row; appending after it
        would glue the next row on (one 77-column row, one record nowhere). Its batch was never
        acknowledged, so it is redelivered whole: the partial row is truncated away first. The
        file is locked (``flock``) meanwhile, so another instance's append in progress is never
        mistaken for a torn row.
        """
        path = self.directory / file_name(datetime.now(LOCAL_ZONE))
        data = text.encode("utf-8", "surrogateescape")
        try:
            with open(path, "ab+") as fh:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
                size = os.fstat(fh.fileno()).st_size
                if size and self._clean != (path, size):
                    size = self._repair(fh, path, size)
                if size == 0:
                    data = (",".join(HEADER) + "\n").encode() + data
                self._clean = None
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
                self._clean = (path, size + len(data))
        except OSError as exc:
            raise RetriableError(f"cannot write {str(path)!r}: {exc.strerror}") from exc

    def _repair(self, fh: BinaryIO, path: Path, size: int) -> int:
        whole = complete_length(fh, size)
        if whole < size:
            fh.truncate(whole)
            log.warning(
                "CSV file ended in a partial row (an append was interrupted); truncated it to its last whole row.",
                extra={"pump": self.name, "file": str(path), "bytes_removed": size - whole},
            )
        return whole

    async def close(self) -> None:
        return None

    async def check(self) -> None:
        await self.start()
        if not os.access(self.directory, os.W_OK):
            raise RetriableError(f"csv_dir {str(self.directory)!r} is not writable")


def build(ctx: SinkContext, meta: Meta) -> CsvSink:
    return CsvSink(ctx.name, Path(meta.csv_dir))


SPEC = SinkSpec(meta=Meta, build=build)
