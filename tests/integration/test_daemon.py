"""The daemon as an operator sees it: graceful SIGTERM drain, health/readiness/metrics endpoints."""

from __future__ import annotations

import json
import signal
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import list_lengths, msgpack_payloads, numbered, pump_keys, push, run_once, write_config
from tests.integration.test_reliability import paths_in, start_daemon, wait_for

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return 0, ""  # not listening yet


def test_sigterm_finishes_the_batch_in_hand_and_returns_the_rest(tmp_path: Path, redis_url: str) -> None:
    records = numbered(40000)
    push(redis_url, msgpack_payloads(records))
    out = tmp_path / "csv"
    config = write_config(tmp_path / "pump.conf", redis_url, {"csv": {"type": "csv", "meta": {"csv_dir": str(out)}}}, purge_chunk=500)
    proc = start_daemon(config, tmp_path / "pump.log")
    wait_for(lambda: len(paths_in(out)) > 0, 60, "the pump to start writing", proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    log = (tmp_path / "pump.log").read_text()
    assert "Shutdown on SIGTERM" in log
    written = paths_in(out)
    assert set(written.values()) == {1}, "a graceful stop writes nothing twice"
    assert [k for k in pump_keys(redis_url) if ":p:" in k or "leases" in k] == [], "no batch stays claimed"
    assert list_lengths(redis_url), "what was not written is back in Redis"
    assert run_once(config).returncode == 0
    final = paths_in(out)
    assert final.keys() == {r.path for r in records} and set(final.values()) == {1}


def test_health_ready_and_metrics_endpoints(tmp_path: Path, redis_url: str) -> None:
    port = free_port()
    push(redis_url, msgpack_payloads(numbered(1000)))
    config = write_config(
        tmp_path / "pump.conf", redis_url, {"csv": {"type": "csv", "meta": {"csv_dir": str(tmp_path / "csv")}}},
        health_check_endpoint_name="hello", health_check_endpoint_port=port,
        telemetry={"health_enabled": True, "health_bind": "127.0.0.1"},
    )  # fmt: skip
    proc = start_daemon(config, tmp_path / "pump.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: len(paths_in(tmp_path / "csv")) == 1000, 60, "delivery", proc)
        wait_for(lambda: get(f"{base}/hello")[0] != 0, 30, "the health listener", proc)
        assert get(f"{base}/hello") == (200, '{"status": "ok"}')
        code, body = get(f"{base}/ready")
        assert code == 200 and json.loads(body)["status"] == "ready"
        time.sleep(0.2)
        code, metrics = get(f"{base}/metrics")
        assert code == 200
        assert 'pump_records_delivered_total{pump="csv"} 1000.0' in metrics
        assert 'pump_records_claimed_total{source="analytics-tyk-system-analytics"} 1000.0' in metrics
        assert "pump_write_duration_seconds_bucket" in metrics and "pump_batch_latency_seconds_count" in metrics
        assert 'pump_last_success_timestamp_seconds{pump="csv"}' in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0


def test_ready_turns_503_when_a_pump_fails_for_too_long(tmp_path: Path, redis_url: str) -> None:
    port = free_port()
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the directory should be")
    push(redis_url, msgpack_payloads(numbered(10)))
    config = write_config(
        tmp_path / "pump.conf", redis_url, {"csv": {"type": "csv", "meta": {"csv_dir": str(blocked)}}},
        health_check_endpoint_port=port,
        telemetry={"health_enabled": True, "health_bind": "127.0.0.1", "ready_failing_after": 1},
        delivery={"backoff_initial": 0.1, "backoff_max": 0.3},
    )  # fmt: skip
    proc = start_daemon(config, tmp_path / "pump.log")
    try:
        # /ready is 503 "starting" too until the claim loop runs (a loaded machine shows it first).
        wait_for(lambda: "pumps failing" in get(f"http://127.0.0.1:{port}/ready")[1], 30, "/ready to report the failing pump", proc)
        code, body = get(f"http://127.0.0.1:{port}/ready")
        assert "csv" in json.loads(body)["pumps"] and "cannot" in json.loads(body)["pumps"]["csv"]
        assert get(f"http://127.0.0.1:{port}/health")[0] == 200, "liveness is about the loop, not the sinks"
        blocked.unlink()
        wait_for(lambda: get(f"http://127.0.0.1:{port}/ready")[0] == 200, 30, "/ready to recover", proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0
