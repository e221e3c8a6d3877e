"""Fixtures: real servers (started once per session, only when a test asks for one) and
per-test isolation. Every server can be replaced by one you run already: see
``tests/servers/__init__.py`` (``PUMP_TEST_REDIS_URL``, ``PUMP_TEST_POSTGRES_DSN``,
``PUMP_TEST_MONGO_URL``, ``PUMP_TEST_ELASTIC_URL``). A Redis given that way is FLUSHED between
tests: point it at a database you can spare.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("TZ", "UTC")  # Tyk buckets and prints times in the pump's zone; tests pin it

from tests import servers
from tests.helpers import client


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
