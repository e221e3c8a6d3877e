"""Issue #9: the daemon survives what operators and outages do to it. Real redis-server (private
instances where a test kills one). Waits are bounded polls, never sleeps that a slow machine
could turn into a failure."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
from pathlib import Path

import pytest
import redis as sync_redis

from pump.config.model import StorageConfig
from pump.source.connect import connect
from pump.source.redis_list import RedisSource, SourceKey
from tests import servers
from tests.helpers import BASE_LIST, client

pytestmark = pytest.mark.integration


# ------------------------------------------------------------------ item 12: no leaked pipeline


async def test_a_claim_that_fails_when_redis_dies_leaves_no_unclosed_pipeline(tmp_path: Path) -> None:
    """Redis is killed while a claim waits for its reply (clients paused, then SIGKILL): the
    claim fails, and its pipeline is reset rather than dropped holding its connection — which
    asyncio reported as ``ERROR asyncio: Unclosed Pipeline client``."""
    srv = servers.start("redis", tmp_path / "redis")
    reports: list[str] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: reports.append(str(ctx.get("message"))))
    redis = connect(StorageConfig(host="127.0.0.1", port=srv.port or 6379))
    source = RedisSource(redis, "pump", "me", 60)
    key = SourceKey(BASE_LIST, "msgpack", "pump")
    try:
        client(srv.url).rpush(BASE_LIST, b"a", b"b")
        assert await source.claim(key, 1) is not None  # the connection is pooled and the script known
        sync_redis.Redis.from_url(srv.url).execute_command("CLIENT", "PAUSE", "20000", "ALL")
        claim = asyncio.create_task(source.claim(key, 1))
        await asyncio.sleep(0.3)  # let it send and wait for the reply
        assert srv.pid is not None
        os.kill(srv.pid, signal.SIGKILL)
        with pytest.raises(sync_redis.exceptions.ConnectionError):
            await claim
        del claim
        gc.collect()
        await asyncio.sleep(0)
        assert reports == []
    finally:
        asyncio.get_running_loop().set_exception_handler(None)
        srv.stop()
        await redis.aclose()
