"""``scripts/bench`` rows ``http`` and ``splunk``: the HTTP pump into the test tooling's HTTP receiver.

The receiver (tests/servers/http_receiver.py, or ``PUMP_TEST_HTTP_RECEIVER_URL``) is a real HTTP/1.1
server process on 127.0.0.1; it is told to keep sizes only, not bodies, so 200,000 records do not
fill its memory. ``http``: NDJSON of Tyk's record JSON, 500 records per request, two requests in
flight. ``splunk``: Tyk's Splunk pump with ``enable_batch`` (HEC events, concatenated). The
receiver is a threaded Python server, so these rows measure the pump against a modest collector.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx


def _receiver(start_server: Callable[[str], str]) -> str:
    url = start_server("http").rstrip("/")
    httpx.post(url + "/_receiver/config", json={"keep_bodies": False}, timeout=10).raise_for_status()
    return url


def http(workdir: Path, start_server: Callable[[str], str]) -> dict[str, Any]:
    url = _receiver(start_server)
    return {"http": {"type": "http", "meta": {"url": url + "/ingest", "batch_max_records": 500, "workers": 2}}}


def splunk(workdir: Path, start_server: Callable[[str], str]) -> dict[str, Any]:
    url = _receiver(start_server)
    return {"splunk": {"type": "splunk", "meta": {"collector_url": url, "collector_token": "bench-token", "enable_batch": True}}}


ROWS = {"http": http, "splunk": splunk}
