"""CSV pump, cost per record (issue 15): work the batch encoder and the torn-row scan must not
repeat, checked by what they do (flagged lines, cache entries, go_field calls), never by time."""

from __future__ import annotations

import csv
import io
import random
from typing import Any

import pytest

from pump import gotime
from pump.sinks import csv as csv_sink
from pump.sinks.csv import _suspects, complete_length, csv_line, csv_quoted_line, csv_row, csv_text, go_csv_line
from tests.helpers import make_record


def test_non_ascii_lines_that_need_no_quotes_are_not_rendered_again() -> None:
    """City names (``São Paulo``) made every line holding one go through the quoting path."""
    batch = [make_record(geo_city_names={"en": "São Paulo"}, api_name="Café", path=f"/ü/{i}") for i in range(10)]
    batch[3] = make_record(api_name="\u3000lead")
    batch[6] = make_record(geo_city_names={"\xa0en": "x"})
    bad, _ = _suspects([csv_line(r) for r in batch])
    assert bad == {3, 6}
    assert csv_text(batch) == "".join(go_csv_line(csv_row(r)) + "\n" for r in batch)
    assert ',"\u3000lead",' in csv_text(batch) and ',"\xa0en:x",' in csv_text(batch)


def test_a_minute_of_records_builds_one_time_string_cache_entry() -> None:
    """Records a second or more apart missed a per-second cache on every call."""
    gotime._GO_STRING_CACHE.clear()
    base = 1_700_000_040 * 1_000_000_000
    texts = [gotime.go_time_string(base + s * 1_000_000_000 + 5, None) for s in range(60)]
    assert len(gotime._GO_STRING_CACHE) == 1
    assert texts[0].endswith(":00.000000005 +0000 UTC") and texts[59].endswith(":59.000000005 +0000 UTC")


def test_a_quoted_line_seen_before_calls_go_field_only_for_its_times(monkeypatch: pytest.MonkeyPatch) -> None:
    """Empty fields were remembered as ``""``, which is falsy: every one was quoted again."""
    r = make_record(user_agent="Mozilla/5.0 (KHTML, like Gecko)", oauth_id="", alias="", raw_request="")
    first, reference = csv_quoted_line(r), go_csv_line(csv_row(r))
    calls: list[str] = []
    real = csv_sink.go_field
    monkeypatch.setitem(csv_quoted_line.__globals__, "go_field", lambda f: calls.append(f) or real(f))
    monkeypatch.setattr(csv_sink, "go_field", lambda f: calls.append(f) or real(f))
    assert csv_quoted_line(r) == first == reference
    assert len(calls) == 2  # TimeStamp and ExpireAt, which differ from record to record


def _rows(rng: random.Random, n: int) -> list[list[str]]:
    parts = ["a", "b,c", 'say "hi"', "x\ny", "\n", '"', "", "plain text"]
    return [[rng.choice(parts) for _ in range(rng.randint(2, 4))] for _ in range(n)]


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 64, 1 << 20])
def test_the_torn_row_scan_finds_the_last_whole_row_at_any_chunk_size(chunk_size: int) -> None:
    """The scan looks at chunk ends backwards instead of at every row; a cut anywhere (inside a
    quoted field, between a quote pair, right after a row) must give the same answer."""
    rng = random.Random(5)
    for _ in range(40):
        rows = _rows(rng, rng.randint(0, 12))
        lines = [go_csv_line(row) + "\n" for row in rows]
        data = "".join(lines).encode()
        ends = [sum(len(x.encode()) for x in lines[:i]) for i in range(len(lines) + 1)]
        start = ends[rng.randint(0, len(ends) - 1)]
        for cut in range(start, len(data) + 1):
            expected = max(e for e in ends if e <= cut and e >= start)
            got = complete_length(io.BytesIO(data), cut, start, chunk_size)
            assert got == expected, (rows, cut, start)
            back: list[Any] = list(csv.reader(io.StringIO(data[:got].decode(), newline="")))
            assert back == rows[: ends.index(got)]
