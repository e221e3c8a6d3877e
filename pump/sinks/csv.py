"""``csv``: Tyk's CSV pump — one file per wall-clock hour, 42 columns, Tyk's value formatting.

File ``<csv_dir>/<Year>-<MonthName>-<Day>-<Hour>.csv`` (no zero padding, e.g.
``2024-January-5-9.csv``), created whole with its header (never seen empty), rows as Tyk's
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
import operator
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from itertools import compress, repeat
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
_HEAD = (",".join(HEADER) + "\n").encode()

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
    """Go's ``k:v;k:v`` of a ``map[string]string``, keys sorted (joined in C: no per-entry bytecode).
    Geo city names are nearly always one language: that case sorts and joins nothing."""
    if names and len(names) == 1:
        ((key, value),) = names.items()
        return key + ":" + value
    return ";".join(map(":".join, sorted((names or {}).items())))


def u64(n: int) -> str:
    """Tyk prints integers (but the latencies) as ``uint64``: a negative one wraps (−1 → 2⁶⁴−1)."""
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


#: What the generated row functions below call.
_HELPERS = dict(u64=u64, go_month=go_month, MONTHS=MONTHS, go_time_string=go_time_string, names_text=names_text, go_uint=go_uint)

#: One record as Tyk's ``AnalyticsRecord.GetLineValues()`` renders it (one list display,
#: generated from the table: no loop or call per column).
csv_row: Callable[[Record], list[str]] = schema.compile_function(
    "csv_row",
    f"def csv_row(r):\n    return [{', '.join(_cell(f) for f in schema.columns('csv'))}]\n",
    _HELPERS,
)


#: Go's ``unicode.IsSpace``: a field starting with one of these is quoted by encoding/csv.
#: (Not Python's ``str.isspace``, which also counts U+001C..U+001F and differs elsewhere.)
GO_SPACE = frozenset("\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000" + "".join(chr(c) for c in range(0x2000, 0x200B)))

#: What a line must not start with (its first field would need quotes).
_LINE_SUSPECTS = ("\t", "\n", "\v", "\f", "\r", " ", "\\.")


def go_field(field: str) -> str:
    r"""One field as Go's ``encoding/csv`` Writer (``Comma`` ``,``, ``UseCRLF`` false) writes it.

    Quoted when it holds a comma, a quote, ``\r`` or ``\n``, when it starts with a character Go's
    ``unicode.IsSpace`` accepts, or when it is exactly ``\.`` (PostgreSQL's end-of-data marker);
    never when empty. Inside quotes only ``"`` is escaped (doubled); ``\r`` and ``\n`` are kept as
    they are. A byte that is not UTF-8 (a surrogate escape here) is never a space, as in Go.
    """
    if not field:
        return field
    if "," in field or '"' in field or "\r" in field or "\n" in field or field[0] in GO_SPACE or field == "\\.":
        return '"' + field.replace('"', '""') + '"'
    return field


def go_csv_line(row: Sequence[str]) -> str:
    """A row as Go's ``csv.Writer.Write`` writes it, without the final newline."""
    return ",".join(go_field(f) for f in row)


def _inline(f: schema.Field) -> str:
    """The f-string replacement field rendering one field as :func:`_cell` does, the common case
    inline (a non-negative integer, a coordinate in ``uint64`` range, a month name)."""
    a = f"r.{f.attr}"
    if f.type == schema.STRING or f.attr in _SIGNED:
        return "{" + a + "}"
    return (
        "{"
        + {
            schema.INT: f"{a} if {a} >= 0 else u64({a})",
            schema.INT64: f"{a} if {a} >= 0 else u64({a})",
            schema.UINT: f"{a} if {a} >= 0 else u64({a})",
            schema.MONTH: f"MONTHS[{a}] if 0 < {a} < 13 else go_month({a})",
            schema.TIME: f"go_time_string({a}_ns, r.tz)",
            schema.NAMES: f"names_text({a}) if {a} else ''",
            # go_uint's arithmetic inline for every float that is not NaN, infinite or out of range.
            schema.FLOAT: f"int({a}) % 18446744073709551616 if -9223372036854775808.0 <= {a} < 18446744073709551616.0 else go_uint({a})",
            schema.TAGS: f"';'.join({a}) if {a} else ''",
            schema.BOOL: f"'true' if {a} else 'false'",
        }[f.type]
        + "}"
    )


#: One record as ``",".join(csv_row(r))``: one f-string, no list, no join, no call per column.
#: Exactly Go's line whenever no field needs quoting (what :func:`_suspects` checks per batch).
csv_line: Callable[[Record], str] = schema.compile_function(
    "csv_line",
    "def csv_line(r):\n    return f" + repr(",".join(_inline(f) for f in schema.columns("csv"))) + "\n",
    _HELPERS,
)


class _Quoted(dict[str, str]):
    """Text already put through :func:`go_field`: user agents, hosts, paths and names repeat from
    record to record, so a line that needs quoting costs a dict look-up (in C) per text field; an
    empty one too (``get(v) or go_field(v)`` called Python for every empty field). Bounded:
    cleared when full, long values (raw bodies) never kept."""

    def __missing__(self, field: str) -> str:
        out = go_field(field)
        if len(field) <= 256:
            if len(self) >= 65536:
                self.clear()
            self[field] = out
        return out


_QUOTED = _Quoted()


def _quoted(f: schema.Field) -> str:
    """The replacement field of :data:`csv_quoted_line`: a text field through :func:`go_field`,
    remembered (:class:`_Quoted`), and the times too (their
    zone names come from tzdata); numbers, month names and booleans never hold a comma, quote,
    line break or leading space, so they stay as :func:`_inline` has them."""
    if f.type in (schema.STRING, schema.NAMES, schema.TAGS):
        return "{Q[" + _inline(f)[1:-1] + "]}"
    if f.type == schema.TIME:
        return "{go_field(" + _inline(f)[1:-1] + ")}"
    return _inline(f)


#: One record as ``go_csv_line(csv_row(r))``, for the few lines of a batch that need quoting.
csv_quoted_line: Callable[[Record], str] = schema.compile_function(
    "csv_quoted_line",
    "def csv_quoted_line(r):\n    return f" + repr(",".join(_quoted(f) for f in schema.columns("csv"))) + "\n",
    {"Q": _QUOTED, "go_field": go_field, **_HELPERS},
)

#: Go's spaces beyond ASCII: a non-ASCII line needs quotes only where one of these leads a field.
_WIDE_SPACES = tuple(sorted(c for c in GO_SPACE if not c.isascii()))
#: Characters that, anywhere in a line with 41 commas, may make Go quote one of its fields
#: (single characters: found by ``memchr``, unlike the comma-led pairs, which cost a slow scan).
_RARE = ('"', "\r", "\t", "\v", "\f", "\\")


def _where(n: int, test: Iterable[object]) -> set[int]:
    """The indexes below ``n`` whose ``test`` value is true (all in C: no bytecode per line)."""
    return set(compress(range(n), test))


def _suspects(lines: list[str]) -> tuple[set[int], str]:
    r"""(indexes of the lines that may need quoting, the batch text if none does).

    Every test runs in C, over the whole batch or over the list of lines, never as bytecode per
    line. A line none of them flags is plain: with exactly 41 commas no field holds a comma, so
    the field starts are the line start and the characters after commas, and with no quote and
    no line break only a space (ASCII or one of Go's Unicode spaces) or ``\.`` there would make
    Go quote. A flagged line is merely rendered the exact way (false alarms cost time, not bytes).
    Lines with a comma in a field (browser user agents: common) are set aside first, so the
    other tests rarely have to look at lines one by one; non-ASCII text (city names) is not.
    """
    n = len(lines)
    counts = list(map(str.count, lines, repeat(",")))
    if counts.count(41) == n:
        bad: set[int] = set()
        text = "\n".join(lines)
    else:
        bad = _where(n, map((41).__ne__, counts))
        text = "\n".join(compress(lines, map((41).__eq__, counts)))
    if any(map(operator.contains, lines, repeat("\n"))):  # memchr per line: faster than counting
        bad |= _where(n, map(operator.contains, lines, repeat("\n")))
    if not text.isascii():  # city names, user agents: only a field led by a Unicode space needs quotes
        for s in _WIDE_SPACES:
            if s in text:
                bad |= _where(n, map(operator.contains, lines, repeat(s)))
    for s in _RARE:
        if s in text:
            bad |= _where(n, map(operator.contains, lines, repeat(s)))
    if ", " in text:
        bad |= _where(n, map(operator.contains, lines, repeat(", ")))
    bad |= _where(n, map(str.startswith, lines, repeat(_LINE_SUSPECTS)))
    return bad, text


def csv_text(records: Sequence[Record]) -> str:
    r"""The CSV lines of a batch, each ending in ``\n``, quoted exactly as Go's encoding/csv does,
    so every line reads back as the 42 fields it was made of, whatever bytes a record holds.
    Per batch: each record is one generated f-string (:data:`csv_line`), the checks for anything
    Go would quote run in C over the batch (:func:`_suspects`), and only the lines they flag are
    rendered again with their text fields quoted (:data:`csv_quoted_line`)."""
    if not records:
        return ""
    lines = [csv_line(r) for r in records]
    bad, text = _suspects(lines)
    if bad:
        for i in bad:
            lines[i] = csv_quoted_line(records[i])
        text = "\n".join(lines)
    return text + "\n"


def file_name(now: datetime) -> str:
    """Tyk's hourly file name for a wall-clock time."""
    return f"{now.year}-{MONTHS[now.month]}-{now.day}-{now.hour}.csv"


def complete_length(fh: BinaryIO, size: int, start: int = 0, chunk_size: int = 1 << 20) -> int:
    """The length of the file's longest prefix made of whole rows (``start`` is a row end).

    A row ends at a ``\n`` outside quotes; a ``\n`` inside a quoted field is data. Go's quoting
    doubles every quote inside a field, so a position is outside quotes exactly when the number of
    ``"`` before it is even. Per chunk (1 MiB), counting in C: the last ``\n`` of the chunk, then
    (only while the count before it is odd) the one before, and so on; never a step per row,
    because with ``--workers`` every append scans the rows the other workers added.
    """
    fh.seek(start)
    quotes = 0
    boundary = start
    offset = start
    while offset < size:
        chunk = fh.read(min(chunk_size, size - offset))
        if not chunk:
            break
        nl = chunk.rfind(b"\n")
        before = quotes + chunk.count(b'"', 0, max(nl, 0))
        while nl >= 0 and before % 2:
            prev = chunk.rfind(b"\n", 0, nl)
            before -= chunk.count(b'"', prev + 1, nl)
            nl = prev
        if nl >= 0:
            boundary = offset + nl + 1
        quotes += chunk.count(b'"')
        offset += len(chunk)
    return boundary


def _create(path: Path, data: bytes) -> int:
    """Create ``path`` holding ``data`` (header, first rows): its inode, or 0 if it exists. Linked
    into place whole, so no reader (log shipper, other instance) sees it empty or headerless."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with open(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fd)
            os.link(tmp, path)
            return os.fstat(fd).st_ino
    except FileExistsError:
        return 0
    finally:
        os.unlink(tmp)


class CsvSink:
    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self.directory = directory
        #: (path, size) the last append of this process left the file at: a file still that size
        #: needs no scan before the next append.
        self._clean: tuple[Path, int] | None = None
        #: (path, inode, size): a prefix of the file known to be whole rows. Another writer
        #: (``--workers``, another instance) appending after it only makes the next append scan
        #: what was added since, not the whole file again.
        self._whole: tuple[Path, int, int] | None = None

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
            if not path.exists() and (ino := _create(path, _HEAD + data)):
                self._clean, self._whole = (path, len(_HEAD) + len(data)), (path, ino, len(_HEAD) + len(data))
                return
            with open(path, "ab+") as fh:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
                st = os.fstat(fh.fileno())
                size = st.st_size
                if size and self._clean != (path, size):
                    whole = self._whole
                    start = whole[2] if whole and whole[:2] == (path, st.st_ino) and whole[2] <= size else 0
                    size = self._repair(fh, path, size, start)
                if size == 0:
                    data = _HEAD + data
                self._clean = None
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
                self._clean = (path, size + len(data))
                self._whole = (path, st.st_ino, size + len(data))
        except OSError as exc:
            raise RetriableError(f"cannot write {str(path)!r}: {exc.strerror}") from exc

    def _repair(self, fh: BinaryIO, path: Path, size: int, start: int = 0) -> int:
        if start:  # still a row end? (a file truncated and grown again by someone else is not)
            fh.seek(start - 1)
            if fh.read(1) != b"\n":
                start = 0
        whole = complete_length(fh, size, start)
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
