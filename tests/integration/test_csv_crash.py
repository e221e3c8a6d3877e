"""CSV under SIGKILL in the middle of an append (issue 9 item 1). Real redis-server, real
``pump run`` processes, real SIGKILL: the test watches the file and kills the pump at the moment a
row is half written."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.helpers import BASE_LIST, ROOT, list_lengths, msgpack_payloads, numbered, pump_cmd, pump_keys, push, run_once, write_config
from tests.integration.test_pipeline import csv_rows

pytestmark = pytest.mark.integration


def ends_torn(directory: Path) -> bool:
    """True when a CSV file in ``directory`` does not end with a newline (an append in progress,
    or one cut off by a kill)."""
    for path in directory.glob("*.csv"):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                return True
        finally:
            os.close(fd)
    return False


def kill_mid_append(proc: subprocess.Popen[bytes], out: Path, patience: float) -> None:
    """SIGKILL ``proc`` as soon as a file is seen half written (or after ``patience`` seconds)."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and ends_torn(out):
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_sigkill_mid_append_leaves_no_torn_row_and_loses_no_record(tmp_path: Path, redis_url: str) -> None:
    """Every row of every file parses as 42 columns after the kills, and every record is in the
    CSV (at least once: CSV is append-only, a redelivered batch appends its rows again)."""
    # 6,000 records of 6 KiB: each 500-record claim is a 3 MB append, long enough to be caught
    records = numbered(6000, raw_request="R" * 6000, tags=["x,y", 'quoted "tag"', "line\nbreak"])
    push(redis_url, msgpack_payloads(records), BASE_LIST)
    out = tmp_path / "csv"
    config = write_config(
        tmp_path / "pump.conf", redis_url, {"csv": {"type": "csv", "meta": {"csv_dir": str(out)}}},
        purge_chunk=500, delivery={"max_batches_in_flight": 1, "max_memory": "192MiB"},  # 500-record claims from the first
    )  # fmt: skip
    torn_after_kill = 0
    log = (tmp_path / "pump.log").open("ab")
    for _ in range(4):
        if not list_lengths(redis_url):
            break
        proc = subprocess.Popen(pump_cmd("run", "--config", str(config)), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
        kill_mid_append(proc, out, patience=20)
        torn_after_kill += ends_torn(out)
    assert torn_after_kill >= 1, "no kill landed in the middle of an append: the test proved nothing"
    proc_once = run_once(config)
    assert proc_once.returncode == 0, proc_once.stderr[-2000:]
    rows = csv_rows(out)
    assert [n for n in Counter(len(r) for r in rows)] == [42], Counter(len(r) for r in rows)
    seen = Counter(r[2] for r in rows)
    assert seen.keys() == {r.path for r in records}, "every record is in the CSV, whole"
    assert all(r[19] == "R" * 6000 and r[35] == 'x,y;quoted "tag";line\nbreak' for r in rows)
    print(f"\n[csv sigkill] kills that left a torn row: {torn_after_kill}; rows {len(rows)}; duplicates {len(rows) - len(seen)}")
    assert list_lengths(redis_url) == {}
    assert pump_keys(redis_url) == []
