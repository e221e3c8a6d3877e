"""The delivery layer's decisions, with a real Redis and the daemon in-process: which records are
retried, split, dead-lettered, parked — observed through sinks written for the test.

The sinks here stand in for nothing: they are the unit under test's collaborators, built to fail
in precise ways (a record they refuse, a number of outages) so the delivery rules can be checked
exactly. Real servers are exercised by each sink's own integration tests."""

from __future__ import annotations

import asyncio
import sys
import types
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from prometheus_client import CollectorRegistry

from pump.app import Daemon
from pump.config.load import load
from pump.decode.msgpack import decode_record
from pump.delivery.deadletter import Entry
from pump.errors import BatchDataError, RejectedRecords, RetriableError
from pump.sinks import SINKS
from pump.sinks.base import SinkBatch, SinkMeta
from tests.helpers import client, msgpack_payloads, numbered, pump_keys, push, write_config

pytestmark = pytest.mark.integration


class Meta(SinkMeta):
    behaviour: str = "ok"
    outages: int = 0
    delay: float = 0.0


class ScriptedSink:
    """Records what it was given; fails as ``behaviour`` says."""

    instances: ClassVar[dict[str, ScriptedSink]] = {}

    def __init__(self, name: str, meta: Meta) -> None:
        self.name = name
        self.meta = meta
        self.calls: list[int] = []
        self.written: Counter[str] = Counter()
        self.failures_left = meta.outages
        ScriptedSink.instances[name] = self

    async def start(self) -> None:
        return None

    async def write(self, batch: SinkBatch) -> None:
        self.calls.append(len(batch.records))
        if self.meta.delay:
            await asyncio.sleep(self.meta.delay)
        if self.failures_left > 0:
            self.failures_left -= 1
            raise RetriableError("server down (test)")
        paths = [r.path for r in batch.records]
        if self.meta.behaviour == "poison" and any("poison" in p for p in paths):
            raise BatchDataError("value out of range (test)")
        if self.meta.behaviour == "crash" and any("poison" in p for p in paths):
            raise ValueError("sink bug on this record (test)")
        if self.meta.behaviour == "partial":
            rejected = {i: "mapper_parsing_exception (test)" for i, p in enumerate(paths) if "poison" in p}
            retry = [i for i, p in enumerate(paths) if "flaky" in p and self.written[f"seen:{p}"] == 0]
            for i, p in enumerate(paths):
                if i in retry:
                    self.written[f"seen:{p}"] += 1
                elif i not in rejected:
                    self.written[p] += 1
            if rejected or retry:
                raise RejectedRecords(rejected, retry)
            return
        self.written.update(paths)

    async def close(self) -> None:
        return None

    async def check(self) -> None:
        return None


def build(ctx: Any, meta: Meta) -> ScriptedSink:
    return ScriptedSink(ctx.name, meta)


@pytest.fixture(autouse=True)
def test_sink_type() -> Iterator[None]:
    module = types.ModuleType("tests_delivery_sink")
    module.Meta = Meta  # type: ignore[attr-defined]
    module.build = build  # type: ignore[attr-defined]
    sys.modules["tests_delivery_sink"] = module
    SINKS["test"] = "tests_delivery_sink"
    ScriptedSink.instances.clear()
    yield
    SINKS.pop("test", None)
    sys.modules.pop("tests_delivery_sink", None)


LAST_REGISTRY: list[CollectorRegistry] = []


async def run_once(tmp_path: Path, redis_url: str, pumps: dict[str, Any], **top: Any) -> int:
    config_path = write_config(tmp_path / "pump.conf", redis_url, pumps, **top)
    config, _ = load(config_path, {})
    registry = CollectorRegistry()
    LAST_REGISTRY[:] = [registry]
    daemon = Daemon(config, once=True, registry=registry, handle_signals=False, once_patience=2)
    return await asyncio.wait_for(daemon.run(), timeout=120)


def parked(pump: str) -> float:
    return LAST_REGISTRY[0].get_sample_value("pump_records_parked_total", {"pump": pump}) or 0.0


def dead_letters(redis_url: str, pump: str) -> list[Entry]:
    return [Entry.decode(e) for e in client(redis_url).lrange(f"pump:deadletter:{pump}", 0, -1)]


async def test_a_poison_record_is_isolated_by_splitting(tmp_path: Path, redis_url: str) -> None:
    records = numbered(1000)
    for i in (17, 500, 999):
        records[i].path = f"/poison/{i}"
    push(redis_url, msgpack_payloads(records))
    assert await run_once(tmp_path, redis_url, {"p": {"type": "test", "meta": {"behaviour": "poison"}}}, purge_chunk=1000) == 0
    sink = ScriptedSink.instances["p"]
    good = {r.path for r in records if "poison" not in r.path}
    assert set(sink.written) == good and set(sink.written.values()) == {1}
    entries = dead_letters(redis_url, "p")
    poison = [p for p in msgpack_payloads(records) if b"poison" in p]
    assert sorted(e.record_id for e in entries) == sorted(decode_record(p).record_id for p in poison)
    assert sorted(e.payload for e in entries) == sorted(poison), "the original bytes are kept for replay"
    assert all("BatchDataError: value out of range (test)" in e.reason for e in entries)
    assert len(sink.calls) < 80, "splitting is logarithmic, not one write per record"
    assert pump_keys(redis_url) == ["pump:deadletter:p"]


async def test_an_exception_from_a_sink_bug_is_isolated_too(tmp_path: Path, redis_url: str) -> None:
    records = numbered(64)
    records[10].path = "/poison/10"
    push(redis_url, msgpack_payloads(records))
    assert await run_once(tmp_path, redis_url, {"p": {"type": "test", "meta": {"behaviour": "crash"}}}) == 0
    assert len(ScriptedSink.instances["p"].written) == 63
    [entry] = dead_letters(redis_url, "p")
    assert entry.reason.startswith("ValueError: sink bug on this record")


async def test_partial_rejection_dead_letters_named_records_and_retries_only_the_rest(tmp_path: Path, redis_url: str) -> None:
    records = numbered(20)
    records[3].path = "/poison/3"
    records[7].path = "/flaky/7"
    records[8].path = "/flaky/8"
    push(redis_url, msgpack_payloads(records))
    assert (
        await run_once(tmp_path, redis_url, {"p": {"type": "test", "meta": {"behaviour": "partial"}}}, delivery={"backoff_initial": 0.05})
        == 0
    )
    sink = ScriptedSink.instances["p"]
    assert sink.calls == [20, 2], "the retry carries only the two records that failed transiently"
    assert {p for p in sink.written if not p.startswith("seen:")} == {r.path for r in records if "poison" not in r.path}
    [entry] = dead_letters(redis_url, "p")
    assert entry.reason == "mapper_parsing_exception (test)"


async def test_retries_go_only_to_the_pump_that_failed(tmp_path: Path, redis_url: str) -> None:
    push(redis_url, msgpack_payloads(numbered(300)))
    pumps = {"steady": {"type": "test"}, "wobbly": {"type": "test", "meta": {"outages": 3}}}
    assert await run_once(tmp_path, redis_url, pumps, purge_chunk=100, delivery={"backoff_initial": 0.05, "backoff_max": 0.1}) == 0
    steady, wobbly = ScriptedSink.instances["steady"], ScriptedSink.instances["wobbly"]
    assert steady.calls == [100, 100, 100], "the healthy pump got each batch exactly once"
    assert set(steady.written.values()) == {1} and len(steady.written) == 300
    assert len(wobbly.written) == 300 and set(wobbly.written.values()) == {1}
    assert pump_keys(redis_url) == []


async def test_max_attempts_sends_records_to_the_dead_letter_list(tmp_path: Path, redis_url: str) -> None:
    records = numbered(10)
    push(redis_url, msgpack_payloads(records))
    pumps = {"p": {"type": "test", "meta": {"outages": 1000}, "delivery": {"max_attempts": 3, "backoff_initial": 0.01}}}
    assert await run_once(tmp_path, redis_url, pumps) == 0
    entries = dead_letters(redis_url, "p")
    assert len(entries) == 10
    assert all(e.reason == "gave up after 3 attempt(s): server down (test)" and e.attempts == 3 for e in entries)
    assert ScriptedSink.instances["p"].calls == [10, 10, 10]


async def test_once_mode_parks_what_a_down_pump_could_not_take_and_exits_1(tmp_path: Path, redis_url: str) -> None:
    push(redis_url, msgpack_payloads(numbered(50)))
    pumps = {"ok": {"type": "test"}, "down": {"type": "test", "meta": {"outages": 10**6}}}
    code = await run_once(tmp_path, redis_url, pumps, delivery={"backoff_initial": 0.05, "backoff_max": 0.2})
    assert code == 1
    assert len(ScriptedSink.instances["ok"].written) == 50
    assert client(redis_url).llen("pump:backlog:down") == 50, "the down pump's records wait in its backlog"
    ScriptedSink.instances.clear()
    assert await run_once(tmp_path, redis_url, {"ok": {"type": "test"}, "down": {"type": "test"}}) == 0
    assert len(ScriptedSink.instances["down"].written) == 50 and ScriptedSink.instances["ok"].written == Counter()
    assert pump_keys(redis_url) == []


async def test_replay_sends_dead_letters_back_to_that_pump_only(tmp_path: Path, redis_url: str) -> None:
    from pump.delivery.deadletter import run_deadletter

    push(redis_url, msgpack_payloads(numbered(5)))
    pumps = {"other": {"type": "test"}, "p": {"type": "test", "meta": {"outages": 1000}, "delivery": {"max_attempts": 1}}}
    assert await run_once(tmp_path, redis_url, pumps) == 0
    assert len(dead_letters(redis_url, "p")) == 5
    config, _ = load(tmp_path / "pump.conf", {})
    assert await run_deadletter(config, "replay", "p", 10) == 0
    ScriptedSink.instances.clear()
    assert await run_once(tmp_path, redis_url, {"other": {"type": "test"}, "p": {"type": "test"}}) == 0
    assert len(ScriptedSink.instances["p"].written) == 5
    assert ScriptedSink.instances["other"].written == Counter(), "a replay is for the pump that dead-lettered"
    assert dead_letters(redis_url, "p") == []


@pytest.mark.parametrize("when_full", ["park", "wait"])
async def test_a_slow_pump_parks_or_makes_everyone_wait(tmp_path: Path, redis_url: str, when_full: str) -> None:
    push(redis_url, msgpack_payloads(numbered(3000)))
    pumps = {
        "fast": {"type": "test", "delivery": {"queue_records": 300}},
        "slow": {"type": "test", "meta": {"delay": 0.05}, "delivery": {"queue_records": 300, "when_full": when_full}},
    }
    assert await run_once(tmp_path, redis_url, pumps, purge_chunk=100) == 0
    assert len(ScriptedSink.instances["fast"].written) == 3000 and len(ScriptedSink.instances["slow"].written) == 3000
    assert parked("fast") == 0, "a pump that keeps up never parks"
    if when_full == "park":
        assert parked("slow") > 0, "the slow pump's share waits in Redis so the fast pump is not held up"
    else:
        assert parked("slow") == 0, "everyone waits for the slow pump instead"


async def test_a_lone_full_pump_waits_instead_of_parking(tmp_path: Path, redis_url: str) -> None:
    """Parking helps only another pump; alone, it would just cost a second decode."""
    push(redis_url, msgpack_payloads(numbered(2000)))
    pumps = {"slow": {"type": "test", "meta": {"delay": 0.02}, "delivery": {"queue_records": 300}}}
    assert await run_once(tmp_path, redis_url, pumps, purge_chunk=100) == 0
    assert len(ScriptedSink.instances["slow"].written) == 2000
    assert parked("slow") == 0
