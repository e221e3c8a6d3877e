"""``pump top`` in a real terminal (a pty) against a real pump draining a real Redis."""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import msgpack_payloads, numbered, push, write_config
from tests.integration.test_daemon import free_port, get
from tests.integration.test_reliability import paths_in, start_daemon, wait_for

pytestmark = pytest.mark.integration

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r")


def _read(fd: int, seconds: float) -> bytes:
    out = b""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                out += os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
    return out


def test_top_shows_a_draining_pump_and_quits_on_q(tmp_path: Path, redis_url: str) -> None:
    port = free_port()
    out = tmp_path / "csv"
    config = write_config(
        tmp_path / "pump.conf", redis_url, {"csv": {"type": "csv", "meta": {"csv_dir": str(out)}}},
        purge_delay=0.2, purge_chunk=200, health_check_endpoint_port=port, telemetry={"health_enabled": True, "health_bind": "127.0.0.1"},
    )  # fmt: skip
    push(redis_url, msgpack_payloads(numbered(2000)))
    proc = start_daemon(config, tmp_path / "pump.log")
    stop = threading.Event()

    def gateway() -> None:  # keeps traffic coming while top watches, as a gateway would
        n = 0
        while not stop.is_set():
            push(redis_url, msgpack_payloads(numbered(300, api_id=f"live-{n}")))
            n += 1
            stop.wait(0.1)

    feeder = threading.Thread(target=gateway, daemon=True)
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    top = None
    try:
        wait_for(lambda: get(f"http://127.0.0.1:{port}/health")[0] == 200, 60, "the health listener", proc)
        wait_for(lambda: len(paths_in(out)) >= 2000, 60, "the first records", proc)
        metrics = f"http://127.0.0.1:{port}/metrics"
        wait_for(lambda: "pump_source_backlog_records{" in get(metrics)[1], 60, "the first list lengths (housekeeping)", proc)
        feeder.start()
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "160", "LINES": "40"}
        top = subprocess.Popen(
            [sys.executable, "-m", "pump", "top", "--url", metrics, "--interval", "0.5"],
            stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True,
        )  # fmt: skip
        screen = ANSI.sub(b"", _read(master, 4.0)).decode(errors="replace")
        rows = [line.split() for line in screen.splitlines() if line.strip().startswith("csv ")]
        assert rows, f"no csv row on the screen:\n{screen[-2000:]}"
        rates = [int(row[1].replace(",", "")) for row in rows if row[1] != "–"]
        assert rates and max(rates) > 0, f"the pump drains, so top shows records/s above 0: {rows}"
        assert "analytics-tyk-system-analytics" in screen and "redis up" in screen
        os.write(master, b"q")
        assert top.wait(timeout=10) == 0
    finally:
        stop.set()
        if top is not None and top.poll() is None:
            top.kill()
        os.close(master)
        os.close(slave)
        proc.terminate()
        proc.wait(timeout=30)


def test_top_against_nothing_is_one_line_and_exit_69(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pump", "top", "--url", f"http://127.0.0.1:{free_port()}/metrics"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 69
    assert result.stderr.count("\n") == 1 and "pump top: cannot read" in result.stderr and "Traceback" not in result.stderr
