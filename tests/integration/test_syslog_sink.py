"""The ``syslog`` pump against a real rsyslog: every record arrives once (by the id in its
structured data) over UDP, TCP and TLS, RFC 5424 fields as rsyslog parsed them, octet-counted
framing that carries a newline inside a message, and TLS verified by default."""

from __future__ import annotations

import os
import re
from collections import Counter

import orjson
import pytest

from pump.errors import RejectedRecords, RetriableError
from pump.sinks.base import SinkBatch
from pump.sinks.syslog import Meta, SyslogSink
from pump.sinks.syslog.message import tyk_text
from pump.sinks.syslog.sink import build_sink
from tests import servers
from tests.integration.stream_helpers import unique, with_ids
from tests.servers import rsyslog

pytestmark = pytest.mark.integration

_ID = re.compile(r'\[pump@32473 id="([^"]+)"\]')


def sink_for(server: servers.Server, transport: str, tag: str, **meta: object) -> SyslogSink:
    addr = server.details["tls_addr"] if transport == "tls" else server.url
    extra: dict[str, object] = {"ssl_ca_file": server.details["tls"]["ca"]} if transport == "tls" else {}
    return build_sink(
        "syslog", Meta.model_validate({"transport": transport, "network_addr": addr, "tag": tag, "log_level": 134, **extra, **meta})
    )


def received(server: servers.Server, tag: str, count: int) -> list[dict[str, object]]:
    return rsyslog.wait_for_messages(server, lambda m: m.get("app_name") == tag, count=count, timeout=20)


@pytest.fixture(autouse=True)
def _file_needed(syslog_server: servers.Server) -> None:
    if not syslog_server.details.get("file"):
        pytest.skip("PUMP_TEST_SYSLOG_FILE is needed to read what an external syslog server received")


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
async def test_every_record_arrives_once_in_rfc5424(syslog_server: servers.Server, transport: str) -> None:
    tag = unique(f"pump-{transport}")
    records = with_ids(400)
    records[3].raw_request = "GET / HTTP/1.1\nHost: x\n"
    sink = sink_for(syslog_server, transport, tag)
    try:
        await sink.start()
        await sink.write(SinkBatch("b1", records[:200]))
        await sink.write(SinkBatch("b2", records[200:]))
    finally:
        await sink.close()
    messages = received(syslog_server, tag, 400)
    ids = Counter(_ID.search(str(m["structured_data"])).group(1) for m in messages)  # type: ignore[union-attr]
    assert len(messages) == 400 and set(ids) == {r.record_id for r in records} and set(ids.values()) == {1}
    by_id = {_ID.search(str(m["structured_data"])).group(1): m for m in messages}  # type: ignore[union-attr]
    m = by_id["rid00000003"]
    assert m["input"] == transport and m["pri"] == "134" and m["facility"] == "local0" and m["severity"] == "info"
    assert m["procid"] == str(os.getpid()) and m["msgid"] == "-"
    assert m["timestamp"] == "2024-01-15T13:45:12.000003Z"  # the record's time, not the send time
    assert m["msg"] == tyk_text(records[3])
    assert str(m["msg"]).startswith("map[alias: api_id:727dad853a8a45f64ab981154d1ffdad api_key:00000000 ")
    assert "content_length:%!s(int64=0)" in str(m["msg"]) and "raw_request:GET / HTTP/1.1\\nHost: x\\n " in str(m["msg"])
    assert "response_code:%!s(int=200)" in str(m["msg"]) and "timestamp:2024-01-15 13:45:12.000003 +0000 UTC" in str(m["msg"])


@pytest.mark.parametrize("transport", ["tcp", "tls"])
async def test_octet_counting_carries_a_newline_inside_a_message(syslog_server: servers.Server, transport: str) -> None:
    tag = unique("pump-nl")
    records = with_ids(3)
    records[1].path = "/first-line\nsecond-line"  # Tyk's text escapes raw data only
    sink = sink_for(syslog_server, transport, tag)
    try:
        await sink.write(SinkBatch("b", records))
    finally:
        await sink.close()
    messages = received(syslog_server, tag, 3)
    assert sum("path:/first-line\nsecond-line " in str(m["msg"]) for m in messages) == 1
    assert len(messages) == 3


async def test_lf_framing_escapes_newlines_and_json_format(syslog_server: servers.Server) -> None:
    tag = unique("pump-lf")
    records = with_ids(3)
    records[1].path = "/a\nb"
    sink = sink_for(syslog_server, "tcp", tag, framing="lf", format="json")
    try:
        await sink.write(SinkBatch("b", records))
    finally:
        await sink.close()
    messages = received(syslog_server, tag, 3)
    docs = sorted((orjson.loads(str(m["msg"])) for m in messages), key=lambda d: d["path"])
    assert [d["path"] for d in docs] == ["/a\nb", "/items/0", "/items/2"]
    assert docs[1]["timestamp"] == "2024-01-15T13:45:12Z" and docs[1]["tags"] == ["key-00000000"]


async def test_tls_is_verified_by_default(syslog_server: servers.Server) -> None:
    tag = unique("pump-untrusted")
    sink = sink_for(syslog_server, "tls", tag, ssl_ca_file=syslog_server.details["tls"]["other_ca"], timeout=3)
    try:
        with pytest.raises(RetriableError, match="not trusted"):
            await sink.write(SinkBatch("b", with_ids(1)))
    finally:
        await sink.close()


async def test_oversized_udp_message_is_refused_alone(syslog_server: servers.Server) -> None:
    tag = unique("pump-big")
    records = with_ids(4)
    records[2].raw_response = "y" * 70_000
    sink = sink_for(syslog_server, "udp", tag)
    try:
        with pytest.raises(RejectedRecords) as info:
            await sink.write(SinkBatch("b", records))
    finally:
        await sink.close()
    assert list(info.value.rejected) == [2] and "over the limit of 65000" in info.value.rejected[2]
    assert len(received(syslog_server, tag, 3)) == 3


async def test_refused_tcp_connection_is_retriable() -> None:
    sink = build_sink("s", Meta.model_validate({"transport": "tcp", "network_addr": f"127.0.0.1:{servers.free_port()}", "timeout": 2}))
    with pytest.raises(RetriableError, match="cannot connect"):
        await sink.write(SinkBatch("b", with_ids(1)))
    await sink.close()
