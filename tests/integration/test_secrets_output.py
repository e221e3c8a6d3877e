"""Secrets through every output of a running pump: ``validate --check``, log lines at debug,
``/ready``, ``/metrics``, dead-letter reasons and ``pump deadletter list``; and the health and
metrics listeners bound to 127.0.0.1.

The servers are unreachable on purpose (a closed port on 127.0.0.1): what is under test is what
the real drivers say about that, and what the pump repeats of it. One sink written for the test
stands for a driver that quotes its whole connection string in an error (psycopg does, for a
string it cannot parse): it lets the dead-letter path be observed exactly."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from pump.app import Daemon
from pump.cli import main
from pump.config.load import load
from pump.delivery.deadletter import run_deadletter
from pump.errors import RetriableError
from pump.redact import Secret, SecretDsn
from pump.sinks import SINKS
from pump.sinks.base import SinkBatch, SinkMeta
from pump.telemetry import logging as pump_logging
from tests.helpers import client, msgpack_payloads, numbered, push, write_config
from tests.integration.test_daemon import free_port, get

pytestmark = pytest.mark.integration


def assert_no_secret(text: str, secrets: list[str], where: str) -> None:
    for secret in secrets:
        assert secret not in text, f"{secret!r} in {where}"
        for piece in secret.split("@"):
            assert len(piece) < 6 or piece not in text, f"{piece!r} (part of a secret) in {where}"


# --------------------------------------------------------------------------- validate --check

CHECK_SECRETS = ["Chk-Redis-Pw-1", "Chk-Sql-Pw@Pg-Pw-2", "Chk-Pg-Kw-3", "Chk-Mongo-Pw-4", "Chk-Es-Url-5", "Chk-Es-Key-6", "Chk-Up-Pw-7"]


def test_validate_check_never_prints_a_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()  # nothing listens there
    doc = {
        "analytics_storage_config": {"host": "127.0.0.1", "port": port, "username": "u", "password": "Chk-Redis-Pw-1"},
        "pumps": {
            # an unescaped @ in the password: libpq takes the rest for the host name, and says so
            "sql": {"type": "sql", "meta": {"type": "postgres", "connection_string": f"postgresql://tyk:Chk-Sql-Pw@Pg-Pw-2@127.0.0.1:{port}/x"}},
            "sqlkw": {"type": "sql", "meta": {"connection_string": f"host=127.0.0.1 port={port} user=tyk password=Chk-Pg-Kw-3 dbname=x"}},
            "mongo": {"type": "mongo", "timeout": 1,
                      "meta": {"mongo_url": f"mongodb://tyk:Chk-Mongo-Pw-4@127.0.0.1:{port}/x", "collection_name": "c"}},
            "es": {"type": "elasticsearch", "timeout": 1, "meta": {
                "elasticsearch_url": f"http://elastic:Chk-Es-Url-5@127.0.0.1:{port}", "auth_api_key_id": "kid",
                "auth_api_key": "Chk-Es-Key-6", "request_timeout": 1}},
        },
        "uptime_pump_config": {"mongo_url": f"mongodb://tyk:Chk-Up-Pw-7@127.0.0.1:{port}/x"},
    }  # fmt: skip
    path = tmp_path / "pump.conf"
    path.write_text(json.dumps(doc))
    code = main(["validate", "--check", "--config", str(path)])
    out = capsys.readouterr()
    text = out.out + out.err
    assert code == 1, text
    for name in ("redis", "pump sql (sql)", "pump sqlkw (sql)", "pump mongo (mongo)", "pump es (elasticsearch)"):
        assert f"FAILED: {name}" in text, text
    assert "<redacted>" in text  # the hosts and users are still shown, the passwords not
    assert_no_secret(text, CHECK_SECRETS, "validate --check output")


# --------------------------------------------------------------------------- a running pump


class EchoMeta(SinkMeta):
    dsn: SecretDsn = SecretStr("")
    token: Secret = SecretStr("")


class EchoingSink:
    """Fails every write the way a careless driver does: quoting its connection string and token."""

    def __init__(self, name: str, meta: EchoMeta) -> None:
        self.name = name
        self.meta = meta

    async def start(self) -> None:
        return None

    async def write(self, batch: SinkBatch) -> None:
        dsn, token = self.meta.dsn.get_secret_value(), self.meta.token.get_secret_value()
        raise RetriableError(f'could not connect with "{dsn}" (token={token!r}, raw {dsn.split("@")[0]})')

    async def close(self) -> None:
        return None

    async def check(self) -> None:
        return None


@pytest.fixture
def echo_sink_type() -> Iterator[None]:
    module = types.ModuleType("tests_echo_sink")
    module.Meta = EchoMeta  # type: ignore[attr-defined]
    module.build = lambda ctx, meta: EchoingSink(ctx.name, meta)  # type: ignore[attr-defined]
    sys.modules["tests_echo_sink"] = module
    SINKS["echo"] = "tests_echo_sink"
    yield
    SINKS.pop("echo", None)
    sys.modules.pop("tests_echo_sink", None)


RUN_SECRETS = ["Run-Echo-Dsn-Pw", "Run-Echo-Token-1", "Run-Sql-Pw@Pg-Host-2", "Run-Mongo-Pw-3", "Run-Es-Basic-4", "Run-Es-Url-5"]


async def wait_until(condition: Any, what: str, seconds: float = 60) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not await asyncio.to_thread(condition):
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_logs_ready_metrics_and_dead_letters_never_show_a_secret(
    tmp_path: Path, redis_url: str, echo_sink_type: None, capsys: pytest.CaptureFixture[str]
) -> None:
    closed, health = free_port(), free_port()
    pumps = {
        "echo": {"type": "echo", "meta": {"dsn": "postgresql://tyk:Run-Echo-Dsn-Pw@db:5432/x", "token": "Run-Echo-Token-1"},
                 "delivery": {"max_attempts": 2}},
        "sql": {"type": "sql", "meta": {"type": "postgres", "connection_string": f"postgresql://tyk:Run-Sql-Pw@Pg-Host-2@127.0.0.1:{closed}/x"}},
        "mongo": {"type": "mongo", "timeout": 0.5,
                  "meta": {"mongo_url": f"mongodb://tyk:Run-Mongo-Pw-3@127.0.0.1:{closed}/x", "collection_name": "c"}},
        "es": {"type": "elasticsearch", "meta": {"elasticsearch_url": f"http://u:Run-Es-Url-5@127.0.0.1:{closed}",
                                                 "auth_basic_username": "elastic", "auth_basic_password": "Run-Es-Basic-4",
                                                 "request_timeout": 1}},
    }  # fmt: skip
    config_path = write_config(
        tmp_path / "pump.conf", redis_url, pumps, log_level="debug", health_check_endpoint_port=health,
        telemetry={"health_enabled": True, "health_bind": "127.0.0.1", "ready_failing_after": 0.1},
        delivery={"backoff_initial": 0.01, "backoff_max": 0.05},
    )  # fmt: skip
    config, _ = load(config_path, {})
    push(redis_url, msgpack_payloads(numbered(20)))
    logs = io.StringIO()
    pump_logging.setup("debug", "text", stream=logs)
    daemon = Daemon(config, registry=CollectorRegistry(), handle_signals=False)
    run = asyncio.create_task(daemon.run())
    base = f"http://127.0.0.1:{health}"
    try:
        redis = client(redis_url)
        await wait_until(lambda: redis.llen("pump:deadletter:echo") == 20, "the echo pump's dead letters")
        await wait_until(lambda: all(n in get(f"{base}/ready")[1] for n in ("echo", "sql", "mongo", "es")), "/ready naming every pump")
        ready_code, ready = await asyncio.to_thread(get, f"{base}/ready")  # the listener runs on this loop
        _, metrics = await asyncio.to_thread(get, f"{base}/metrics")
        dead_raw = b"\n".join(redis.lrange("pump:deadletter:echo", 0, -1)).decode()
        redis.close()
        capsys.readouterr()
        await run_deadletter(config, "list", "echo", 5)
        listed = capsys.readouterr().out
    finally:
        daemon.request_stop("test")
        await asyncio.wait_for(run, timeout=60)
        pump_logging.setup("info", "text")
    log_text = logs.getvalue()
    # What is checked is really there…
    assert ready_code == 503 and "pumps failing" in ready
    assert "could not connect with" in ready and "could not connect with" in dead_raw and "could not connect with" in listed
    assert "Records dead-lettered." in log_text and "DEBUG" in log_text
    assert "pump_records_deadlettered_total" in metrics
    # …and no secret is.
    for text, where in ((log_text, "the logs"), (ready, "/ready"), (metrics, "/metrics"), (dead_raw, "dead letters"),
                        (listed, "pump deadletter list")):  # fmt: skip
        assert_no_secret(text, RUN_SECRETS, where)


# --------------------------------------------------------------------------- listeners


def listening_addresses(port: int) -> set[str]:
    """Local addresses of the sockets listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, _, hexport = local.partition(":")
            if state == "0A" and int(hexport, 16) == port:
                raw = bytes.fromhex(address)
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                found.add(socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, words))
    return found


async def test_health_and_metrics_listeners_can_be_kept_on_127_0_0_1(tmp_path: Path, redis_url: str) -> None:
    health, metrics = free_port(), free_port()
    config_path = write_config(
        tmp_path / "pump.conf", redis_url, {"d": {"type": "dummy"}}, health_check_endpoint_port=health,
        telemetry={"health_enabled": True, "health_bind": "127.0.0.1", "metrics_address": f"127.0.0.1:{metrics}"},
    )  # fmt: skip
    config, _ = load(config_path, {})
    daemon = Daemon(config, registry=CollectorRegistry(), handle_signals=False)
    run = asyncio.create_task(daemon.run())
    try:
        await wait_until(lambda: get(f"http://127.0.0.1:{health}/ready")[0] == 200, "the health listener")
        await wait_until(lambda: "pump_build_info" in get(f"http://127.0.0.1:{metrics}/metrics")[1], "the metrics listener")
        assert listening_addresses(health) == {"127.0.0.1"}
        assert listening_addresses(metrics) == {"127.0.0.1"}
        code, _ = await asyncio.to_thread(get, f"http://127.0.0.1:{health}/metrics")
        assert code == 404, "with metrics_address, /metrics is served there only"
    finally:
        daemon.request_stop("test")
        await asyncio.wait_for(run, timeout=60)


async def test_deadletter_list_scrubs_entries_written_before_the_upgrade(
    tmp_path: Path, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Dead letters written by an older pump may hold a driver's words, DSN and all: the listing
    shows them scrubbed of the configured secrets."""
    from pump.delivery.deadletter import Entry

    dsn = "postgresql://tyk:Old-Entry-Pw-9@db:5432/x"
    config_path = write_config(tmp_path / "pump.conf", redis_url, {"sql": {"type": "sql", "meta": {"connection_string": dsn}}})
    config, _ = load(config_path, {})
    reason = 'ProgrammingError: invalid dsn: missing "=" after "Old-Entry-Pw-9@db" in connection info string'
    entry = Entry("sql", reason, "analytics-tyk-system-analytics", "msgpack", "b1", 3, b"payload", "r1")
    redis = client(redis_url)
    redis.rpush("pump:deadletter:sql", entry.encode())
    redis.close()
    await run_deadletter(config, "list", "sql", 5)
    listed = capsys.readouterr().out
    assert "ProgrammingError: invalid dsn" in listed
    assert_no_secret(listed, ["Old-Entry-Pw-9"], "pump deadletter list")
