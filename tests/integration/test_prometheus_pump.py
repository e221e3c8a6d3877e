"""The ``prometheus`` pump, whole pipeline: records pushed into a real Redis as a gateway does,
drained by a real ``pump run`` daemon, and its exposition scraped over HTTP — exact counts per
label set, Tyk's names, labels and buckets; the series cap under 100,000 distinct keys."""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import make_record, msgpack_payloads, push, write_config
from tests.integration.test_reliability import start_daemon, wait_for
from tests.scrape import get, labels, parse, types, value

pytestmark = pytest.mark.integration

A, B = "api-a", "api-b"
UUID = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
MCP = {"IsMCP": True, "JSONRPCMethod": "tools/call", "PrimitiveType": "tool", "PrimitiveName": "search"}


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [int(s.getsockname()[1]) for s in socks]
    for s in socks:
        s.close()
    return ports


def golden_records() -> list[Any]:
    g1 = [
        make_record(
            api_id=A,
            api_name="Users",
            response_code=200,
            api_key="key-aaaa1111",
            path="/users/42",
            track_path=True,
            request_time=12,
            latency_upstream=10,
            latency_gateway=2,
        )
        for _ in range(30)
    ]
    g2 = [
        make_record(
            api_id=A,
            api_name="Users",
            response_code=500,
            api_key="key-bbbb2222",
            path="/users/7",
            track_path=False,
            request_time=120,
            latency_upstream=100,
            latency_gateway=20,
        )
        for _ in range(20)
    ]
    g3 = [
        make_record(
            api_id=B,
            api_name="Orders",
            response_code=404,
            api_key="key-aaaa1111",
            oauth_id="client-1",
            method="POST",
            path=f"/orders/{UUID}",
            track_path=True,
            request_time=5,
            latency_upstream=3,
            latency_gateway=2,
        )
        for _ in range(10)
    ]
    g4 = [
        make_record(
            api_id=B,
            api_name="Orders",
            response_code=200,
            api_key="k",
            method="POST",
            path="/mcp",
            mcp_stats=MCP,
            request_time=40,
            latency_upstream=30,
            latency_gateway=10,
        )
        for _ in range(5)
    ]
    return g1 + g2 + g3 + g4  # fmt: skip


def run_daemon(tmp_path: Path, redis_url: str, meta: dict[str, Any]) -> tuple[subprocess.Popen[bytes], str, str]:
    health, prom = free_ports(2)
    config = write_config(
        tmp_path / "pump.conf", redis_url,
        {"prom": {"type": "prometheus", "meta": {"listen_address": f"127.0.0.1:{prom}", **meta}}},
        purge_chunk=5000, health_check_endpoint_port=health,
        telemetry={"health_enabled": True, "health_bind": "127.0.0.1"},
    )  # fmt: skip
    proc = start_daemon(config, tmp_path / "pump.log")
    return proc, f"http://127.0.0.1:{health}/metrics", f"http://127.0.0.1:{prom}{meta.get('path', '/metrics')}"


def delivered(pump_metrics: str) -> float:
    code, body = get(pump_metrics)
    return value(parse(body), "pump_records_delivered_total", pump="prom") if code == 200 else -1


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0


def test_exposition_after_a_known_batch_matches_tyk_names_labels_and_counts(tmp_path: Path, redis_url: str) -> None:
    meta = {
        "path": "/analytics",
        "template_paths": True,
        "custom_metrics": [
            {"name": "tyk_http_status_per_api_name", "help": "HTTP status codes per API name", "metric_type": "counter",
             "labels": ["response_code", "api_name"]},
            {"name": "tyk_requests_per_key", "help": "requests per key", "metric_type": "counter", "labels": ["api_key"],
             "obfuscate_api_keys": True, "obfuscate_api_keys_length": 6},
            {"name": "tyk_mcp_latency", "help": "MCP request time", "metric_type": "histogram", "labels": ["mcp_method", "api"],
             "buckets": [10, 50, 100], "mcp_only": True},
        ],
    }  # fmt: skip
    proc, pump_url, prom_url = run_daemon(tmp_path, redis_url, meta)
    try:
        wait_for(lambda: get(prom_url)[0] == 200, 60, "the prometheus listener (up before any record)", proc)
        assert parse(get(prom_url)[1]).get("tyk_http_status", {}) == {}
        push(redis_url, msgpack_payloads(golden_records()))
        wait_for(lambda: delivered(pump_url) == 65, 60, "65 records delivered", proc)
        code, text = get(prom_url)
        assert get(prom_url.rsplit("/", 1)[0] + "/metrics")[0] == 404, "only the configured path is served"
    finally:
        stop(proc)
    assert code == 200
    s = parse(text)
    t = types(text)
    assert t["tyk_http_status"] == "counter" and t["tyk_latency"] == "histogram" and t["tyk_mcp_latency"] == "histogram"
    assert "tyk_http_status_total" not in s, "Tyk's counters have no _total suffix"
    assert s["tyk_http_status"] == {
        labels(code="200", api=A): 30, labels(code="500", api=A): 20, labels(code="404", api=B): 10, labels(code="200", api=B): 5,
    }  # fmt: skip
    assert s["tyk_http_status_per_path"] == {
        labels(code="200", api=A, path="/users/{id}", method="GET"): 30,
        labels(code="500", api=A, path="unknown", method="GET"): 20,  # endpoint not tracked: Tyk's "unknown"
        labels(code="404", api=B, path="/orders/{uuid}", method="POST"): 10,
        labels(code="200", api=B, path="unknown", method="POST"): 5,
    }
    assert s["tyk_http_status_per_key"] == {
        labels(code="200", key="key-aaaa1111"): 30, labels(code="500", key="key-bbbb2222"): 20,
        labels(code="404", key="key-aaaa1111"): 10, labels(code="200", key="k"): 5,
    }  # fmt: skip
    assert s["tyk_http_status_per_oauth_client"] == {
        labels(code="200", client_id=""): 35, labels(code="500", client_id=""): 20, labels(code="404", client_id="client-1"): 10,
    }  # fmt: skip
    # tyk_latency: three observations per record (total = request_time, upstream, gateway), Tyk's buckets.
    le = {b: value(s, "tyk_latency_bucket", type="total", api=A, le=b) for b in ("10", "15", "100", "200", "+Inf")}
    assert le == {"10": 0, "15": 30, "100": 30, "200": 50, "+Inf": 50}
    assert value(s, "tyk_latency_sum", type="total", api=A) == 30 * 12 + 20 * 120
    assert value(s, "tyk_latency_count", type="upstream", api=A) == 50
    assert value(s, "tyk_latency_sum", type="upstream", api=A) == 30 * 10 + 20 * 100
    assert value(s, "tyk_latency_bucket", type="gateway", api=A, le="2") == 30
    assert value(s, "tyk_latency_sum", type="total", api=B) == 10 * 5 + 5 * 40
    buckets = sorted({dict(k)["le"] for k in s["tyk_latency_bucket"]}, key=lambda x: float(x))
    assert buckets == [*(str(b) for b in (1, 2, 5, 7, 10, 15, 20, 25, 30, 40, 50, 60, 70, 80, 90, 100, 200, 300, 400, 500, 1000,
                                          2000, 5000, 10000, 30000, 60000)), "+Inf"]  # fmt: skip
    assert len(s["tyk_latency_count"]) == 6  # {total, upstream, gateway} × {api-a, api-b}
    assert s["tyk_http_status_per_api_name"] == {
        labels(response_code="200", api_name="Users"): 30, labels(response_code="500", api_name="Users"): 20,
        labels(response_code="404", api_name="Orders"): 10, labels(response_code="200", api_name="Orders"): 5,
    }  # fmt: skip
    assert s["tyk_requests_per_key"] == {labels(api_key="****aa1111"): 40, labels(api_key="****bb2222"): 20, labels(api_key="--"): 5}
    assert s["tyk_mcp_latency_count"] == {labels(type="total", mcp_method="tools/call", api=B): 5}, "mcp_only: MCP records only"
    assert value(s, "tyk_mcp_latency_bucket", type="total", mcp_method="tools/call", api=B, le="50") == 5
    assert value(s, "tyk_mcp_latency_bucket", type="total", mcp_method="tools/call", api=B, le="10") == 0
    assert set(s["pump_prometheus_dropped_series_total"].values()) == {0}


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_series_cap_holds_with_100000_distinct_keys_and_memory_stays_flat(tmp_path: Path, redis_url: str) -> None:
    cap = 1000
    meta = {"max_series_per_metric": cap, "disabled_metrics": ["tyk_http_status_per_path", "tyk_http_status_per_oauth_client"]}
    proc, pump_url, prom_url = run_daemon(tmp_path, redis_url, meta)
    rss = []
    try:
        for round_ in range(2):
            records = [make_record(api_key=f"key-{round_}-{i:06d}") for i in range(100_000)]
            push(redis_url, msgpack_payloads(records))
            del records
            want = 100_000 * (round_ + 1)
            wait_for(lambda want=want: delivered(pump_url) == want, 300, f"{want} records delivered", proc)  # type: ignore[misc]
            rss.append(rss_kib(proc.pid))
        text = get(prom_url)[1]
    finally:
        stop(proc)
    s = parse(text)
    assert len(s["tyk_http_status_per_key"]) == cap
    assert sum(s["tyk_http_status_per_key"].values()) == cap
    assert value(s, "pump_prometheus_dropped_series_total", metric="tyk_http_status_per_key") == 200_000 - cap
    assert value(s, "pump_prometheus_series", metric="tyk_http_status_per_key") == cap
    assert s["tyk_http_status"] == {labels(code="200", api="727dad853a8a45f64ab981154d1ffdad"): 200_000}, "bounded families lose nothing"
    assert value(s, "pump_prometheus_dropped_series_total", metric="tyk_http_status") == 0
    log = (tmp_path / "pump.log").read_text()
    assert log.count("reached its series cap") == 1, "the overflow is logged once"
    growth_mib = (rss[1] - rss[0]) / 1024
    print(f"RSS after 100k distinct keys: {rss[0] / 1024:.0f} MiB, after 200k: {rss[1] / 1024:.0f} MiB")
    assert growth_mib < 20, f"RSS grew {growth_mib:.0f} MiB over the second 100,000 keys"
