"""CSV pump: Tyk's hourly file naming, header once per file, append across batches."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from pump.sinks.base import SinkBatch
from pump.sinks.csv import HEADER, CsvSink, csv_row, csv_text, file_name, go_csv_line
from tests.helpers import ROOT, make_record


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


GO_QUOTING = json.loads((ROOT / "tests" / "fixtures" / "tyk" / "csv_quoting.json").read_text())["cases"]


def _text(hex_bytes: str) -> str:
    return bytes.fromhex(hex_bytes).decode("utf-8", "surrogateescape")


@pytest.mark.parametrize("case", GO_QUOTING, ids=lambda c: "+".join(c["fields_hex"]))
def test_fields_are_quoted_exactly_as_go_encoding_csv_does(case: dict[str, Any]) -> None:
    """tests/fixtures/tyk/csv_quoting.json is Go's own output (tests/tools/gocsv): empty fields
    bare, ``\\.`` quoted, a leading Go space quoted, quotes doubled, \\r and \\n kept inside quotes."""
    fields = [_text(h) for h in case["fields_hex"]]
    line = go_csv_line(fields) + "\n"
    assert line.encode("utf-8", "surrogateescape") == bytes.fromhex(case["line_hex"])


TEXT_FIELDS = ("method", "host", "path", "raw_path", "user_agent", "api_key", "api_version", "api_name", "api_id",
               "org_id", "oauth_id", "raw_request", "raw_response", "ip_address", "alias", "api_schema",
               "original_path", "listen_path")  # fmt: skip


@pytest.mark.parametrize("value", ["/a\nb", "/a\rb", "/a\r\nb", "\n", "\r", '"', " lead", "\\.", ",", "\x00", "\udcff\udcfe", "\u2028x"])
def test_every_row_reads_back_as_42_columns_whatever_the_bytes(value: str) -> None:
    """Issue 9 item 2: ``/a\\nb`` in any text field used to read back as two broken rows
    (3 and 40 columns). Every text column, one at a time, and the tags."""
    records = [make_record(**{f: value}) for f in TEXT_FIELDS] + [make_record(tags=[value, value]), make_record()]
    rows = list(csv.reader(io.StringIO(csv_text(records), newline="")))
    assert [len(r) for r in rows] == [42] * len(records)
    for row, record in zip(rows, records, strict=True):
        assert row == csv_row(record)
    assert rows[-2][35] == f"{value};{value}"
