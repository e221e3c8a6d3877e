"""CSV pump, batch encoder (issue 15 item 1): a batch's text is one f-string per record plus checks
in C over the batch, and must be byte for byte what the field-by-field Go quoting gives."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path
from typing import Any

import pytest

from pump.demo import Traffic
from pump.record import Record
from pump.sinks.base import SinkBatch
from pump.sinks.csv import CsvSink, _suspects, csv_line, csv_row, csv_text, go_csv_line
from tests.helpers import make_record

TEXT_FIELDS = ("method", "host", "path", "raw_path", "user_agent", "api_key", "api_version", "api_name", "api_id",
               "org_id", "oauth_id", "raw_request", "raw_response", "ip_address", "geo_country_iso_code",
               "geo_location_time_zone", "alias", "api_schema", "original_path", "listen_path")  # fmt: skip

#: Every way a value can make Go quote a field (or look as if it might), and near misses.
HOSTILE = ["a,b", 'say "hi"', "a\nb", "a\rb", " lead", "\tlead", "\vlead", "\flead", "\\.", "\\.x", "x\\.", ", ",
           "\u2028lead", "\u3000lead", "\x85lead", "\xa0lead", "x\u2028", "caf\xe9", "\udcff\udcfe", "\x1clead", ""]  # fmt: skip


def reference(records: list[Record]) -> str:
    """Field by field, as Go's csv.Writer does: the definition the fast path must match."""
    return "".join(go_csv_line(csv_row(r)) + "\n" for r in records)


def hostile_records() -> list[Record]:
    out = [make_record(**{f: v}) for f, v in itertools.product(TEXT_FIELDS, HOSTILE)]
    out += [make_record(tags=[v, "t"]) for v in HOSTILE] + [make_record(tags=[]), make_record(tags=None)]
    out += [make_record(geo_city_names={"en": v, "de": "x"}) for v in HOSTILE]
    numbers: dict[str, list[Any]] = {
        "content_length": [-1, 0, 1 << 63, -(1 << 63)],
        "response_code": [-200, 0],
        "latency_total": [-5, 7],
        "month": [0, 1, 12, 13, -1],
        "day": [-3],
        "geo_city_geoname_id": [-1, 1 << 64],
        "geo_location_latitude": [-0.5, -12.75, 0.0, 51.5, float("nan"), float("inf"), float("-inf"), 1e19, 1.9e19, -1e30],
        "track_path": [True, False],
    }
    out += [make_record(**{f: v}) for f, vs in numbers.items() for v in vs]
    return out


def test_a_line_is_the_joined_row() -> None:
    for r in hostile_records() + list(Traffic(seed=3).stream(500)):
        assert csv_line(r) == ",".join(csv_row(r))


@pytest.mark.parametrize("where", ["first", "middle", "last", "alone"])
def test_a_hostile_record_anywhere_in_a_batch_is_quoted_as_go_does(where: str) -> None:
    plain = [make_record(path=f"/p/{i}") for i in range(5)]
    for bad in hostile_records():
        batch = {"first": [bad, *plain], "middle": [*plain[:2], bad, *plain[2:]], "last": [*plain, bad], "alone": [bad]}[where]
        assert csv_text(batch) == reference(batch), csv_row(bad)


def test_demo_traffic_with_hostile_records_mixed_in_is_byte_identical() -> None:
    records = list(Traffic(seed=7, detailed_share=0.35).stream(3000))
    hostile = hostile_records()
    mixed = list(itertools.chain.from_iterable(zip(records, itertools.cycle(hostile), strict=False)))
    for batch in (records, mixed, hostile):
        assert csv_text(batch) == reference(batch)
    assert csv_text([]) == ""


def test_only_lines_that_need_quoting_are_rendered_again() -> None:
    """The point of the batch encoder: plain lines are left as their f-string made them."""
    batch = [make_record(path=f"/p/{i}") for i in range(10)]
    assert _suspects([csv_line(r) for r in batch])[0] == set()
    batch[2] = make_record(user_agent="Mozilla/5.0 (KHTML, like Gecko)")
    batch[5] = make_record(alias='a "b"')
    batch[7] = make_record(method=" GET")
    batch[9] = make_record(raw_request="line\nbreak")
    bad, _ = _suspects([csv_line(r) for r in batch])
    assert bad == {2, 5, 7, 9}


def test_rows_another_writer_appended_are_scanned_from_where_this_one_left_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``--workers`` (or several instances) on one file, every append follows another
    writer's: scanning the whole file each time made appends quadratic in the file's size."""
    import asyncio

    from pump.sinks import csv as csv_sink

    a, b = CsvSink("csv", tmp_path), CsvSink("csv", tmp_path)
    asyncio.run(a.write(SinkBatch("1", [make_record(path="/a1")])))
    path = next(tmp_path.iterdir())
    mine = path.stat().st_size
    asyncio.run(b.write(SinkBatch("2", [make_record(path="/b1")])))
    with path.open("ab") as fh:  # a third writer killed in the middle of a row
        fh.write(b'GET,api.example.com,"/torn')
    starts: list[int] = []
    real = csv_sink.complete_length
    monkeypatch.setattr(csv_sink, "complete_length", lambda fh, size, start=0: starts.append(start) or real(fh, size, start))
    asyncio.run(a.write(SinkBatch("3", [make_record(path="/a2")])))
    assert starts == [mine]
    rows = list(csv.reader(path.open(newline="")))
    assert [r[2] for r in rows[1:]] == ["/a1", "/b1", "/a2"]
    assert all(len(r) == 42 for r in rows)
