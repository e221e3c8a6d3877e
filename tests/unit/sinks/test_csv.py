"""CSV pump: Tyk's hourly file naming, header once per file, append across batches."""

from __future__ import annotations

import asyncio
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


@pytest.mark.parametrize("cut", ["mid_row", "inside_quoted_newline", "mid_header", "after_quote"])
async def test_a_torn_last_row_is_cut_off_before_the_next_append(tmp_path: Path, cut: str) -> None:
    """Issue 9 item 1: a kill in the middle of an append leaves part of a row; the next append
    (a new process: nothing remembered) used to glue its first row onto it (77 columns)."""
    out = tmp_path / "out"
    sink = CsvSink("csv", out)
    await sink.start()
    first = [make_record(path="/one"), make_record(path="/two")]
    await sink.write(SinkBatch("a", first))
    path = next(out.iterdir())
    whole = path.read_bytes()
    torn_row = csv_text([make_record(path='/torn\n"row"')]).encode()
    torn = {
        "mid_row": whole + torn_row[:30],
        "inside_quoted_newline": whole + torn_row[: torn_row.index(b"\n") + 1],  # ends in \n, inside quotes
        "mid_header": whole[:20],
        "after_quote": whole + torn_row[: torn_row.index(b'"') + 1],
    }[cut]
    path.write_bytes(torn)
    restarted = CsvSink("csv", out)
    await restarted.write(SinkBatch("b", [make_record(path="/three")]))
    rows = list(csv.reader(path.open(newline="")))
    assert all(len(r) == 42 for r in rows), [len(r) for r in rows]
    expected = ["/three"] if cut == "mid_header" else ["/one", "/two", "/three"]
    assert rows[0] == HEADER and [r[2] for r in rows[1:]] == expected


def test_a_file_this_process_left_whole_is_not_rescanned(tmp_path: Path) -> None:
    sink = CsvSink("csv", tmp_path)
    asyncio.run(sink.write(SinkBatch("a", [make_record()])))
    path = next(tmp_path.iterdir())
    assert sink._clean == (path, path.stat().st_size)
    asyncio.run(sink.write(SinkBatch("b", [make_record(path="/a\nb")])))
    assert sink._clean == (path, path.stat().st_size)
    assert [len(r) for r in csv.reader(path.open(newline=""))] == [42, 42, 42]


def test_a_new_hour_file_is_never_seen_empty_or_without_its_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader polling csv_dir (CI's kafka outage test, a log shipper) once found an hour's
    file holding nothing: created by ``open("ab+")``, its header and rows not yet written. Now
    every observation the pump makes possible (each lock, sync and link) sees each ``.csv`` file
    absent or starting with the header; the temporary file never has the ``.csv`` suffix."""
    from pump.sinks import csv as csv_sink

    seen: list[bytes] = []

    def look(real: Any) -> Any:
        def spy(*args: Any) -> Any:
            out = real(*args)
            seen.extend(p.read_bytes()[: len(",".join(HEADER))] for p in tmp_path.glob("*.csv"))
            return out

        return spy

    monkeypatch.setattr(csv_sink.fcntl, "flock", look(csv_sink.fcntl.flock))
    monkeypatch.setattr(csv_sink.os, "fsync", look(csv_sink.os.fsync))
    hours = iter(range(3))
    monkeypatch.setattr(csv_sink, "file_name", lambda now: f"2024-January-5-{next(hours) // 2}.csv")
    sink = CsvSink("csv", tmp_path)
    for name in "abc":
        asyncio.run(sink.write(SinkBatch(name, [make_record(path=f"/{name}")])))
    assert seen and set(seen) == {",".join(HEADER).encode()}
    files = sorted(tmp_path.iterdir())
    assert [p.name for p in files] == ["2024-January-5-0.csv", "2024-January-5-1.csv"]
    assert [[r[2] for r in csv.reader(p.open(newline=""))] for p in files] == [["Path", "/a", "/b"], ["Path", "/c"]]


def test_an_hour_file_created_meanwhile_by_another_writer_is_appended_to(tmp_path: Path) -> None:
    from pump.sinks.csv import _create

    path = tmp_path / "2024-January-5-9.csv"
    assert _create(path, b"mine\n") == path.stat().st_ino
    assert _create(path, b"theirs\n") == 0
    assert path.read_bytes() == b"mine\n" and list(tmp_path.iterdir()) == [path]
