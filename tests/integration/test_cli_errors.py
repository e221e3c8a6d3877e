"""Issue #9, item 13: what an operator sees when something is wrong is one line naming what failed
and what to do, with a documented exit code — never a traceback. The real CLI, in a subprocess;
the servers that are "down" are closed ports on 127.0.0.1 (connections refused)."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from tests import servers
from tests.helpers import ROOT, msgpack_payloads, numbered, pump_cmd, push, run_once, run_pump, write_config

pytestmark = pytest.mark.integration

EX_USAGE, EX_UNAVAILABLE, EX_IOERR, EX_TEMPFAIL = 2, 69, 74, 75


def dead_redis(tmp_path: Path, **top: object) -> tuple[Path, int]:
    port = servers.free_port()
    csv = {"csv": {"type": "csv", "meta": {"csv_dir": str(tmp_path / "csv")}}}
    return write_config(tmp_path / "pump.conf", f"redis://127.0.0.1:{port}/0", csv, **top), port


def refused(port: int) -> str:
    return f"Error 111 connecting to 127.0.0.1:{port}. Connect call failed ('127.0.0.1', {port})"


def test_demo_with_redis_down_is_one_line_and_exit_69(tmp_path: Path) -> None:
    config, port = dead_redis(tmp_path)
    proc = run_pump("demo", "--config", str(config), "--records", "10", timeout=60)
    assert proc.returncode == EX_UNAVAILABLE
    assert proc.stderr == (
        f"pump demo: cannot reach Redis at redis://127.0.0.1:{port}/0: {refused(port)}; "
        f"start it, or fix analytics_storage_config in {config}\n"
    )
    assert proc.stdout == ""


def test_deadletter_list_with_redis_down_is_one_line_and_exit_69(tmp_path: Path) -> None:
    config, port = dead_redis(tmp_path)
    proc = run_pump("deadletter", "list", "--config", str(config), timeout=60)
    assert proc.returncode == EX_UNAVAILABLE
    assert proc.stderr == (
        f"pump deadletter: cannot reach Redis at redis://127.0.0.1:{port}/0: {refused(port)}; "
        f"start it, or fix analytics_storage_config in {config}\n"
    )


def test_deadletter_for_a_pump_that_does_not_exist_is_a_usage_error(tmp_path: Path) -> None:
    """Checked before Redis is touched (it is down here): a typo is not "0 entries"."""
    config, _ = dead_redis(tmp_path)
    for action in ("list", "replay", "purge"):
        proc = run_pump("deadletter", action, "--config", str(config), "--pump", "NOSUCH", timeout=60)
        assert proc.returncode == EX_USAGE, proc.stderr
        assert proc.stderr == (
            "pump deadletter: no pump named 'NOSUCH'; --pump takes one of: csv, undecodable "
            "(without --pump: every dead-letter list in Redis, those of removed pumps too)\n"
        )


def test_a_health_port_in_use_is_one_line_and_exit_75(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config, _ = dead_redis(tmp_path, health_check_endpoint_port=port, telemetry={"health_enabled": True, "health_bind": "127.0.0.1"})
        proc = run_pump("run", "--config", str(config), timeout=60)
    assert proc.returncode == EX_TEMPFAIL
    [line] = proc.stderr.splitlines()
    assert line.endswith(
        f" ERROR   pump: cannot serve /health on 127.0.0.1:{port}: the address is already in use (is another pump running?); "
        "stop it or set health_check_endpoint_port to a free port"
    ), line


def test_a_metrics_port_in_use_is_one_line_and_exit_75(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config, _ = dead_redis(tmp_path, telemetry={"metrics_address": f"127.0.0.1:{port}"})
        proc = run_pump("run", "--config", str(config), timeout=60)
    assert proc.returncode == EX_TEMPFAIL
    [line] = proc.stderr.splitlines()
    assert line.endswith(
        f" ERROR   pump: cannot serve /metrics on 127.0.0.1:{port}: the address is already in use (is another pump running?); "
        "stop it or set telemetry.metrics_address to a free port"
    ), line


def test_output_closed_early_is_silent_and_exit_74(tmp_path: Path, redis_url: str) -> None:
    """``pump demo | head -1``: the reader going away is not worth a traceback (or a word)."""
    config = write_config(tmp_path / "pump.conf", redis_url, {"csv": {"type": "csv", "meta": {"csv_dir": str(tmp_path / "csv")}}})
    proc = subprocess.Popen(
        pump_cmd("demo", "--config", str(config), "--records", "50"), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # nobody reads: the first print meets a closed pipe
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == EX_IOERR
    assert err == b""
    assert run_once(config).returncode == 0, "the records were pushed all the same"


def test_validate_check_reports_every_dead_server_at_once_on_one_line_each(tmp_path: Path) -> None:
    """Two Mongo pumps, the Mongo uptime sink and Redis, all down: the checks run at the same
    time under --timeout (serially, at pymongo's 10 s each, this took over 30 s), each failure is
    one line without pymongo's topology description, the uptime sink is checked too."""
    port = servers.free_port()
    mongo = f"mongodb://127.0.0.1:{port}/analytics"
    pumps = {
        "raw": {"type": "mongo", "meta": {"mongo_url": mongo, "collection_name": "tyk_analytics"}},
        "agg": {"type": "mongo-pump-aggregate", "meta": {"mongo_url": mongo}},
        "csv": {"type": "csv", "meta": {"csv_dir": str(tmp_path / "csv")}},
    }
    config = write_config(tmp_path / "pump.conf", f"redis://127.0.0.1:{port}/0", pumps, uptime_pump_config={"mongo_url": mongo})
    proc = run_pump("validate", "--check", "--timeout", "2", "--config", str(config), timeout=20)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    reason = (
        f"mongo ping failed ({mongo}): ServerSelectionTimeoutError: 127.0.0.1:{port}: [Errno 111] Connect call failed ('127.0.0.1', {port})"
    )
    assert proc.stdout.splitlines()[1:] == [
        f"  FAILED: redis redis://127.0.0.1:{port}/0: {refused(port)} — check that Redis is running and analytics_storage_config",
        f"  FAILED: pump raw (mongo): {reason} — check the server and pumps.raw.meta",
        f"  FAILED: pump agg (mongo-pump-aggregate): {reason} — check the server and pumps.agg.meta",
        "  ok: pump csv (csv)",
        "  FAILED: uptime (mongo): no answer within 2 s — check the server and uptime_pump_config",
    ]
    assert proc.stderr == ""


def test_undecodable_payloads_are_dead_lettered_at_error_and_counted_in_the_summary(tmp_path: Path, redis_url: str) -> None:
    push(redis_url, [b"\xc1not-a-record", *msgpack_payloads(numbered(5)), b"\x93\x01\x02"])
    config = write_config(tmp_path / "pump.conf", redis_url, {"csv": {"type": "csv", "meta": {"csv_dir": str(tmp_path / "csv")}}})
    proc = run_once(config)
    assert proc.returncode == 0, proc.stderr
    [dead] = [line for line in proc.stderr.splitlines() if "Payloads that are not Tyk records were dead-lettered." in line]
    assert " ERROR   pump.delivery.fanout: " in dead and "records=2" in dead
    [summary] = [line for line in proc.stderr.splitlines() if "Shutdown on drained" in line]
    assert "◆ 5 records written ◆ 0 dead-lettered ◆ 2 undecodable ◆ 0 returned to Redis" in summary, summary
