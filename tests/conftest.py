"""Fixtures: real servers (started once per session, only when a test asks for one) and
per-test isolation. Every server can be replaced by one you run already: see
``tests/servers/__init__.py`` (``PUMP_TEST_REDIS_URL``, ``PUMP_TEST_POSTGRES_DSN``,
``PUMP_TEST_MONGO_URL``, ``PUMP_TEST_ELASTIC_URL``). A Redis given that way is FLUSHED between
tests: point it at a database you can spare.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("TZ", "UTC")  # Tyk buckets and prints times in the pump's zone; tests pin it
# ``pump run`` defaults to one worker per usable CPU (pump/supervisor.py). The suite pins one
# process, so exact log lines, instance ids and crash points stay those of the process that
# writes; tests/integration/test_workers.py runs supervisors (--workers N) and the default itself.
# A SIGKILLed supervisor SIGKILLs its workers, so ``TYK_PMP_WORKERS=auto scripts/test`` still
# exercises real crashes.
os.environ.setdefault("TYK_PMP_WORKERS", "1")

from tests import servers
from tests.helpers import client
from tests.servers.http_receiver import HttpReceiver


@pytest.fixture(scope="session")
def server_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


def _server(name: str, root: Path) -> Iterator[servers.Server]:
    srv = servers.start(name, root / name)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def redis_server(server_root: Path) -> Iterator[servers.Server]:
    yield from _server("redis", server_root)


@pytest.fixture
def redis_url(redis_server: servers.Server) -> Iterator[str]:
    """A real Redis, empty at the start of the test."""
    r = client(redis_server.url)
    r.flushdb()
    r.close()
    yield redis_server.url


@pytest.fixture(scope="session")
def postgres_server(server_root: Path) -> Iterator[servers.Server]:
    yield from _server("postgres", server_root)


@pytest.fixture(scope="session")
def mongo_server(server_root: Path) -> Iterator[servers.Server]:
    yield from _server("mongo", server_root)


@pytest.fixture(scope="session")
def elastic_server(server_root: Path) -> Iterator[servers.Server]:
    yield from _server("elastic", server_root)


@pytest.fixture(scope="session")
def elastic7_server(server_root: Path) -> Iterator[servers.Server]:
    """A real Elasticsearch 7.10.2 node (skipped, with the reason, if it cannot start here).

    Shared by the Elasticsearch pipeline tests and the sink contract suite (one node per session)."""
    try:
        srv = servers.start("elastic7", server_root / "elastic7")
    except servers.ServerError as exc:
        pytest.skip(f"Elasticsearch 7.10.2 unavailable: {exc}")
    try:
        yield srv
    finally:
        srv.stop()


# --------------------------------------------------------------------------------------------
# More real servers (tests/servers): MariaDB, Kafka, rsyslog, statsd_exporter, Redis Cluster and
# Sentinel, and our HTTP receiver. Each starts on first use, once per session; replace one with
# yours through PUMP_TEST_MYSQL_DSN, PUMP_TEST_KAFKA_BOOTSTRAP, PUMP_TEST_SYSLOG_ADDR (+ _FILE),
# PUMP_TEST_STATSD_ADDR (+ _METRICS_URL), PUMP_TEST_REDIS_CLUSTER_URL,
# PUMP_TEST_REDIS_SENTINEL_ADDRS (+ _MASTER) or PUMP_TEST_HTTP_RECEIVER_URL.
# --------------------------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    """Let the server tooling's slow first-run steps (installs, builds) reach the terminal live."""

    def live(line: str) -> None:
        # Looked up per line: the terminal reporter registers after this conftest's pytest_configure.
        capture = config.pluginmanager.getplugin("capturemanager")
        reporter = config.pluginmanager.getplugin("terminalreporter")
        if capture is None or reporter is None:
            print(line, file=sys.stderr, flush=True)
            return
        with capture.global_and_fixture_disabled():
            if getattr(reporter._tw, "width_of_current_line", 0):
                reporter.write("\n")  # after the progress dots of -q
            reporter.write_line(line)

    servers.set_live_output(live)


@pytest.fixture(scope="session")
def mysql_server(server_root: Path) -> Iterator[servers.Server]:
    """MariaDB 10.11 with user ``pump`` (password auth) and database ``pump``; the URL is a mysql:// DSN."""
    yield from _server("mysql", server_root)


@pytest.fixture(scope="session")
def kafka_server(server_root: Path) -> Iterator[servers.Server]:
    """A single-node KRaft Kafka broker; the URL is its bootstrap address ``127.0.0.1:PORT``."""
    yield from _server("kafka", server_root)


@pytest.fixture(scope="session")
def syslog_server(server_root: Path) -> Iterator[servers.Server]:
    """rsyslog on UDP+TCP (URL ``127.0.0.1:PORT``) and TLS; what it receives: tests.servers.rsyslog.read_messages."""
    yield from _server("syslog", server_root)


@pytest.fixture(scope="session")
def statsd_server(server_root: Path) -> Iterator[servers.Server]:
    """statsd_exporter on UDP+TCP (URL ``127.0.0.1:PORT``), metrics at ``details["metrics_url"]``."""
    yield from _server("statsd", server_root)


@pytest.fixture(scope="session")
def redis_cluster_server(server_root: Path) -> Iterator[servers.Server]:
    """A 3-master Redis Cluster; the URL names one node."""
    yield from _server("redis_cluster", server_root)


@pytest.fixture(scope="session")
def redis_sentinel_server(server_root: Path) -> Iterator[servers.Server]:
    """Master, replica and 3 sentinels; the URL is the sentinel addresses, ``details["master_name"]``.

    Shared by the session: a test that kills nodes should start its own set instead."""
    yield from _server("redis_sentinel", server_root)


@pytest.fixture
def redis_cluster(redis_cluster_server: servers.Server) -> Iterator[servers.Server]:
    """The session's Redis Cluster with every primary flushed at the start of the test (an
    external one, ``PUMP_TEST_REDIS_CLUSTER_URL``, is flushed too: point it at one you can spare)."""
    from redis.cluster import RedisCluster

    rc = RedisCluster.from_url(redis_cluster_server.url)
    try:
        rc.flushall(target_nodes=RedisCluster.PRIMARIES)
    finally:
        rc.close()
    yield redis_cluster_server


@pytest.fixture
def redis_sentinel(tmp_path: Path) -> Iterator[servers.Server]:
    """A Sentinel set of this test's own (master, replica, 3 sentinels): the test may kill its master.

    With ``PUMP_TEST_REDIS_SENTINEL_ADDRS`` (and ``PUMP_TEST_REDIS_SENTINEL_MASTER``) that set is
    used instead and its master is flushed; it cannot be SIGKILLed from here."""
    srv = servers.start("redis_sentinel", tmp_path / "redis_sentinel")
    try:
        if srv.external:
            from tests.servers.redis_cluster import sentinel_master

            host, port = sentinel_master(srv)
            r = client(f"redis://{host}:{port}")
            r.flushdb()
            r.close()
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def http_receiver_server(server_root: Path) -> Iterator[servers.Server]:
    yield from _server("http", server_root)


@pytest.fixture
def http_receiver(http_receiver_server: servers.Server) -> Iterator[HttpReceiver]:
    """The session's HTTP receiver, with no recorded requests and no failure rules at the start of the test."""
    receiver = HttpReceiver(http_receiver_server)
    receiver.reset()
    yield receiver
    receiver.close()


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    """Each test starts with no remembered secrets (``pump.redact``): a password one test used
    (say ``secret``) must not be scrubbed out of another test's text."""
    from pump.redact import forget_all

    forget_all()
    yield
