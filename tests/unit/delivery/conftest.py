"""Fixtures of the delivery unit tests: a fakeredis per test and a factory of wired rigs that are
stopped at the end of the test whatever happened."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import fakeredis
import pytest

from tests.unit.delivery.rig import Rig, ScriptedSink, fake_redis


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test here that waits for anything is a broken test: fail it fast rather than hang."""
    for item in items:
        if item.path.parent == Path(__file__).parent:
            item.add_marker(pytest.mark.timeout(10))


@pytest.fixture
async def redis() -> AsyncIterator[fakeredis.FakeAsyncRedis]:
    r = await fake_redis()
    yield r
    await r.aclose()


@pytest.fixture
async def make_rig(redis: fakeredis.FakeAsyncRedis) -> AsyncIterator[Callable[..., Rig]]:
    rigs: list[Rig] = []

    def make(sinks: dict[str, ScriptedSink], **kwargs: Any) -> Rig:
        rig = Rig(redis, sinks, **kwargs)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        if rig.started:
            await rig.stop()
