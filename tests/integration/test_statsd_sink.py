"""The ``statsd`` and ``dogstatsd`` pumps against a real statsd_exporter: after a known batch the
scrape shows exact counts and sums per metric (Tyk's names and tags), over UDP, TCP and a Unix
datagram socket, with lines packed into datagrams."""

from __future__ import annotations

import uuid
from collections import defaultdict
from pathlib import Path

import pytest

from pump.record import Record
from pump.sinks.base import SinkBatch, SinkContext
from pump.sinks.statsd import Meta, build, dogstatsd
from pump.sinks.statsd.sink import StatsdSink
from tests import servers
from tests.integration.stream_helpers import with_ids
from tests.servers import statsd_exporter as se

pytestmark = pytest.mark.integration


def ctx(name: str) -> SinkContext:
    return SinkContext(name=name, pump=None, config=None)  # type: ignore[arg-type]


def known_batch(n: int, api: str) -> list[Record]:
    records = with_ids(n, api_name=api)
    for i, r in enumerate(records):
        r.response_code = (200, 200, 404, 500)[i % 4]
        r.latency_total = 10 + i % 7
        r.path = f"/users/{i % 3}/"
    return records


async def write_all(sink: StatsdSink, records: list[Record], size: int = 250) -> None:
    try:
        await sink.start()
        for i in range(0, len(records), size):
            await sink.write(SinkBatch(f"b{i}", records[i : i + size]))
    finally:
        await sink.close()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_statsd_timings_exact_after_a_known_batch(statsd_server: servers.Server, transport: str) -> None:
    api = f"Api {uuid.uuid4().hex[:8]}"
    records = known_batch(1000, api)
    meta = Meta.model_validate(
        {"address": statsd_server.url, "fields": ["request_time", "latency_total"], "tags": ["api_name", "response_code"],
         "transport": transport}
    )  # fmt: skip
    await write_all(build(ctx("statsd"), meta), records)
    slug = api.lower().replace(" ", "")
    expected: dict[str, list[int]] = defaultdict(list)
    for r in records:
        expected[f"request_time_{slug}_{r.response_code}"].append(r.request_time)
        expected[f"latency_total_{slug}_{r.response_code}"].append(r.latency_total)
    for name, values in expected.items():
        se.wait_for_sample(statsd_server, f"{name}_count", value=float(len(values)))
        assert se.samples(statsd_server)[(f"{name}_sum", frozenset())] == pytest.approx(sum(values) / 1000)  # ms → s


async def test_statsd_path_tag_is_method_and_path_as_tyk(statsd_server: servers.Server) -> None:
    records = known_batch(30, "x")
    for r in records:
        r.api_id = f"api{uuid.uuid4().hex[:6]}" if r is records[0] else records[0].api_id
    meta = Meta.model_validate({"address": statsd_server.url, "fields": ["request_time"], "tags": ["api_id", "path"]})
    await write_all(build(ctx("statsd"), meta), records)
    api = records[0].api_id
    for k in range(3):
        count = sum(1 for r in records if r.path == f"/users/{k}/")
        se.wait_for_sample(statsd_server, f"request_time_{api}_get_users_{k}_count", value=float(count))


async def test_dogstatsd_histogram_with_tyk_tags(statsd_server: servers.Server) -> None:
    namespace = f"ns{uuid.uuid4().hex[:8]}"
    records = known_batch(600, "Users API")
    meta = dogstatsd.Meta.model_validate(
        {"address": statsd_server.url, "namespace": namespace, "buffered": True, "buffered_max_messages": 8}
    )
    await write_all(dogstatsd.build(ctx("dog"), meta), records)
    groups: dict[tuple[str, int], list[int]] = defaultdict(list)
    for r in records:
        groups[(r.path, r.response_code)].append(r.request_time)
    for (path, code), values in groups.items():
        labels = {
            "path": path, "method": "GET", "response_code": str(code), "api_version": "Non Versioned", "api_name": "Users API",
            "api_id": "727dad853a8a45f64ab981154d1ffdad", "org_id": "5e9d9544a1dcd60001d0ed20", "tracked": "false",
        }  # fmt: skip
        se.wait_for_sample(statsd_server, f"{namespace}_request_time_count", labels, value=float(len(values)))
        assert se.samples(statsd_server)[(f"{namespace}_request_time_sum", frozenset(labels.items()))] == sum(values)


async def test_dogstatsd_over_a_unix_datagram_socket(tmp_path: Path) -> None:
    sock = tmp_path / "dsd.sock"
    server = servers.start("statsd", tmp_path / "uds", extra_args=(f"--statsd.listen-unixgram={sock}",))
    try:
        records = known_batch(200, "Users API")
        meta = dogstatsd.Meta.model_validate(
            {"address": f"unix://{sock}", "namespace": "uds", "tags": ["api_name", "response_code"], "async_uds": True}
        )
        await write_all(dogstatsd.build(ctx("dog"), meta), records)
        for code in (200, 404, 500):
            n = sum(1 for r in records if r.response_code == code)
            se.wait_for_sample(server, "uds_request_time_count", {"api_name": "Users API", "response_code": str(code)}, value=float(n))
    finally:
        server.stop()
