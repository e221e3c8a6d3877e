"""Fixtures of the integration tests.

Mongo: a fresh database per test on the session's Mongo-wire server (FerretDB, or
``PUMP_TEST_MONGO_URL``), dropped afterwards; and sinks closed even when a test fails (FerretDB
waits for open clients when it stops). A test module may define its own ``db``/``db_url``."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests import servers
from tests.integration.mongo_helpers import database_url


@pytest.fixture
def db_url(mongo_server: servers.Server, request: pytest.FixtureRequest) -> str:
    prefix = request.module.__name__.rsplit("_", 1)[-1][:8]
    return database_url(mongo_server.url, f"{prefix}_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def db(db_url: str) -> Iterator[Any]:
    from pymongo import MongoClient

    client: MongoClient[Any] = MongoClient(db_url, tz_aware=True)
    database = client.get_default_database()
    yield database
    client.drop_database(database.name)
    client.close()


@pytest.fixture
async def open_sinks() -> AsyncIterator[list[Any]]:
    """Sinks created by a test; closed at the end even if it fails."""
    created: list[Any] = []
    yield created
    for s in created:
        await s.close()
