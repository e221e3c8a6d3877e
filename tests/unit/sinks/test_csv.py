"""CSV pump: Tyk's hourly file naming, header once per file, append across batches."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path

from pump.sinks.base import SinkBatch
from pump.sinks.csv import HEADER, CsvSink, csv_text, file_name
from tests.helpers import make_record


def test_file_name_has_no_zero_padding() -> None:
    assert file_name(datetime(2024, 1, 5, 9)) == "2024-January-5-9.csv"
    assert file_name(datetime(2024, 12, 25, 23)) == "2024-December-25-23.csv"


async def test_header_once_then_rows_appended(tmp_path: Path) -> None:
    sink = CsvSink("csv", tmp_path / "out")
    await sink.start()
    await sink.write(SinkBatch("a", [make_record(path='/with,comma "quoted"')]))
    await sink.write(SinkBatch("b", [make_record(path="/plain")]))
    files = list((tmp_path / "out").iterdir())
    assert len(files) == 1
    rows = list(csv.reader(files[0].open()))
    assert rows[0] == HEADER
    assert [r[2] for r in rows[1:]] == ['/with,comma "quoted"', "/plain"]
    assert all(len(r) == 42 for r in rows)


def test_a_value_with_a_carriage_return_or_line_feed_is_quoted() -> None:
    """Go's encoding/csv quotes a field holding CR or LF; unquoted, a user agent ending in CRLF
    split its row in two (and shifted every later column)."""
    records = [make_record(user_agent="agent\r\n"), make_record(raw_request="GET / HTTP/1.1\r\nHost: x\r\n\r\n", path='/q"')]
    text = csv_text(records)
    assert '"agent\r\n"' in text and '"GET / HTTP/1.1\r\nHost: x\r\n\r\n"' in text
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert [len(r) for r in rows] == [42, 42]
    assert rows[0][5] == "agent\r\n" and rows[1][2] == '/q"'
