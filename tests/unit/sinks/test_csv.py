"""CSV pump: Tyk's hourly file naming, header once per file, append across batches."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

from pump.sinks.base import SinkBatch
from pump.sinks.csv import HEADER, CsvSink, file_name
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
