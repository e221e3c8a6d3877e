"""``scripts/bench`` rows of the streaming pumps, each against its real server from tests/servers:

* ``kafka``       Apache Kafka 4.4 (KRaft), idempotent producer, acks=all, snappy, a fresh topic;
* ``syslog-tcp``  rsyslog over TCP, octet counting, each batch acknowledged by the receiver's TCP;
* ``syslog-udp``  rsyslog over UDP (paced datagrams; what rsyslog drops is not measured here);
* ``statsd``      statsd_exporter over UDP, two timings per record, Tyk's tags in the name;
* ``dogstatsd``   statsd_exporter over UDP, one histogram per record with Tyk's default tags.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

Start = Callable[[str], str]


def kafka(workdir: Path, start_server: Start) -> dict[str, Any]:
    url = start_server("kafka")
    return {"kafka": {"type": "kafka", "meta": {"broker": [url], "topic": f"pump-bench-{uuid.uuid4().hex[:8]}", "compressed": True}}}


def _syslog(transport: str, start_server: Start) -> dict[str, Any]:
    url = start_server("syslog")
    return {"syslog": {"type": "syslog", "meta": {"transport": transport, "network_addr": url, "log_level": 134, "tag": "bench"}}}


def statsd(workdir: Path, start_server: Start) -> dict[str, Any]:
    url = start_server("statsd")
    meta = {"address": url, "fields": ["request_time", "latency_total"], "tags": ["api_name", "response_code"]}
    return {"statsd": {"type": "statsd", "meta": meta}}


def dogstatsd(workdir: Path, start_server: Start) -> dict[str, Any]:
    url = start_server("statsd")
    return {"dogstatsd": {"type": "dogstatsd", "meta": {"address": url, "namespace": "bench"}}}


ROWS = {
    "kafka": kafka,
    "syslog-tcp": lambda w, s: _syslog("tcp", s),
    "syslog-udp": lambda w, s: _syslog("udp", s),
    "statsd": statsd,
    "dogstatsd": dogstatsd,
}
