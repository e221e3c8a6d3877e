"""The sink contract: what every sink promises the delivery layer, checked on its real server.

Like Vector's sink compliance tests or the Singer SDK's target test class, one set of clauses
runs against every entry of :data:`tests.contract.cases.CASES` (how to add one: that module's
docstring). Each sink is built from a pump file entry through the public registry, written to,
and what reached the server is read back with the server's own client. The clauses:

* **writes a batch** — every record arrives (count and keys);
* **same batch twice** — a redelivered batch (retried, or after a crash from a new process)
  changes nothing on an idempotent sink; an append-only sink writes it exactly once more
  (at-least-once, documented per case);
* **outage at start / lost server** — a server that is not there, or goes away between writes
  (a TCP proxy in front of the real server is cut), is a ``RetriableError``; once it is back the
  same batch is written exactly once. A UDP sink that packs a batch into one datagram sees a
  closed port one write late (``Case.outage_seen_late``): its first write returns, the next raises;
* **bad record** — a record the server refuses for good is a data error (``BatchDataError`` or
  ``RejectedRecords`` naming it); driven the way ``pump.delivery`` splits batches, only that
  record ends up dead-lettered and every other record arrives once — also when the whole batch
  is redelivered after its halves were written;
* **awkward text** — text that is not UTF-8, NUL, tabs, newlines, quotes and int64 extremes are
  written, not refused (a gateway does send them);
* **closes twice** — after writing, and without ever starting;
* **check** — ``check()`` passes on the live server and fails clearly (one line, a
  ``RetriableError``) on a dead one.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from pump.config.model import Config
from pump.errors import BatchDataError, RejectedRecords, RetriableError
from pump.sinks import build, build_uptime
from pump.sinks.base import Sink, SinkBatch, SinkContext
from tests.contract.cases import CASES, Case, Store

T = TypeVar("T")

#: No sink call may take longer: a hang is a contract failure, not a stuck suite.
CALL_LIMIT = 60.0
N = 30

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(params=[pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def case(request: pytest.FixtureRequest) -> Case:
    c: Case = request.param
    clause = request.node.originalname.removeprefix("test_")
    if clause in c.xfail:
        request.applymarker(pytest.mark.xfail(reason=c.xfail[clause], strict=True))
    return c


@pytest.fixture
def store(case: Case, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    server = request.getfixturevalue(case.server) if case.server else None
    s = case.store(server, tmp_path)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
async def sinks() -> AsyncIterator[list[Sink]]:
    """Every sink a test made, closed at the end even when the test fails."""
    made: list[Sink] = []
    yield made
    for s in made:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(s.close(), CALL_LIMIT)


def make(entry: dict[str, Any], made: list[Sink]) -> Sink:
    """The sink of one pump file entry, built the way the daemon builds it."""
    if "uptime_pump_config" in entry:
        config = Config.model_validate(entry)
        assert config.uptime_pump_config is not None
        sink: Sink = build_uptime(config.uptime_pump_config.uptime_type, config)
    else:
        config = Config.model_validate({"pumps": {"contract": entry}})
        sink = build(SinkContext("contract", config.pumps["contract"], config))
    made.append(sink)
    return sink


async def bounded(call: Awaitable[T]) -> T:
    async with asyncio.timeout(CALL_LIMIT):
        return await call


async def started(case: Case, store: Store, made: list[Sink], address: str | None = None) -> Sink:
    sink = make(store.pump(address), made)
    await bounded(sink.start())
    return sink


async def arrived(store: Store, sink: Sink) -> Counter[str]:
    """What reached the server, read in a thread: the event loop keeps running meanwhile, for a
    sink that is itself the server (Prometheus) and for clients' background tasks."""
    return Counter(await asyncio.to_thread(store.read, sink))


def keys(case: Case, records: Sequence[Any]) -> Counter[str]:
    return Counter(case.key(r) for r in records)


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def dead_entry(case: Case, store: Store) -> dict[str, Any]:
    if store.address is not None:
        return store.pump(closed_port())
    entry = store.dead()
    if entry is None:
        pytest.skip(case.no_outage)
    return entry


async def deliver(sink: Sink, batch: SinkBatch) -> tuple[list[Any], BaseException | None]:
    """Write ``batch`` as ``pump.delivery`` does when a sink refuses data: a ``BatchDataError``
    splits the part into halves ``<id>.0``/``<id>.1`` down to the single record, which is
    dead-lettered; ``RejectedRecords`` dead-letters the named records and writes the ones to retry
    again as ``<id>.rN``. Returns the dead-lettered records and the first write's error; any other
    error fails the contract (a ``RetriableError`` would retry the bad record forever)."""
    dead: list[Any] = []
    first: BaseException | None = None
    parts: list[tuple[str, Sequence[Any]]] = [(batch.id, batch.records)]
    while parts:
        part_id, records = parts.pop()
        for attempt in range(1, 4):
            try:
                await bounded(sink.write(SinkBatch(part_id, records)))
                break
            except RejectedRecords as exc:
                first = first or exc
                dead += [records[i] for i in sorted(exc.rejected)]
                records = [records[i] for i in exc.retry]
                part_id = f"{part_id}.r{attempt}"
                if not records:
                    break
            except BatchDataError as exc:
                first = first or exc
                if len(records) == 1:
                    dead += records
                else:
                    mid = len(records) // 2
                    parts += [(f"{part_id}.1", records[mid:]), (f"{part_id}.0", records[:mid])]
                break
        else:
            pytest.fail(f"{len(records)} record(s) still 'to retry' after 3 attempts")
    return dead, first


class Cut:
    """A TCP pass-through to a real server that a test can cut — every open connection reset and
    the port refusing new ones, like a server that went away — and restore on the same port."""

    def __init__(self, target: str) -> None:
        host, _, port = target.rpartition(":")
        self.target = (host, int(port))
        self.port = 0
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def open(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", self.port, reuse_address=True)
        self.port = self.server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for w in list(self.writers):
            w.transport.abort()
        self.writers.clear()
        await self.server.wait_closed()
        self.server = None
        await asyncio.sleep(0.1)  # the aborted sockets are closed by loop callbacks: let them run

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)  # at once: a cut while the upstream connection is opened must reach it
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        if writer not in self.writers:  # cut meanwhile
            up_writer.transport.abort()
            return
        self.writers.add(up_writer)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.writers -= {writer, up_writer}


# ------------------------------------------------------------------------------------ clauses


async def test_writes_a_batch(case: Case, store: Store, sinks: list[Sink]) -> None:
    sink = await started(case, store, sinks)
    records = case.records(N, "w")
    await bounded(sink.write(SinkBatch("w", records)))
    assert await arrived(store, sink) == keys(case, records)


async def test_same_batch_twice(case: Case, store: Store, sinks: list[Sink]) -> None:
    sink = await started(case, store, sinks)
    records = case.records(N, "t")
    await bounded(sink.write(SinkBatch("t", records)))
    once = await arrived(store, sink)
    await bounded(sink.write(SinkBatch("t", records)))
    if case.at_least_once:  # documented: the whole batch is written once more, nothing lost or mangled
        assert await arrived(store, sink) == keys(case, records + records), case.at_least_once
        return
    assert await arrived(store, sink) == once == keys(case, records)
    await bounded(sink.close())  # a crash before the ack: the next process gets the batch again
    again = make(store.pump(), sinks)
    await bounded(again.start())
    await bounded(again.write(SinkBatch("t", records)))
    assert await arrived(store, again) == once


async def test_outage_at_start_is_retriable(case: Case, store: Store, sinks: list[Sink]) -> None:
    sink = make(dead_entry(case, store), sinks)
    if case.outage_seen_late:  # UDP: the first datagram cannot fail; its ICMP error fails the next write
        await bounded(sink.start())
        await bounded(sink.write(SinkBatch("o", case.records(3, "o"))))
        with pytest.raises(RetriableError):
            await bounded(sink.write(SinkBatch("o2", case.records(3, "o2"))))
        return
    with pytest.raises(RetriableError):
        await bounded(sink.start())
        await bounded(sink.write(SinkBatch("o", case.records(3, "o"))))  # a sink that connects lazily


async def test_lost_server_is_retriable_and_the_retry_writes_once(case: Case, store: Store, sinks: list[Sink]) -> None:
    if store.address is None:
        pytest.skip(f"{case.id} keeps no TCP connection to a server that could be lost")
    proxy = Cut(store.address)
    await proxy.open()
    try:
        sink = await started(case, store, sinks, proxy.address)
        first, second = case.records(N, "l1"), case.records(N, "l2")
        await bounded(sink.write(SinkBatch("l1", first)))
        assert await arrived(store, sink) == keys(case, first), "through the proxy before it is cut"
        await proxy.cut()
        with pytest.raises(RetriableError):
            await bounded(sink.write(SinkBatch("l2", second)))
        await proxy.open()  # the server is back, same address
        await bounded(sink.write(SinkBatch("l2", second)))  # the delivery layer's retry
        assert await arrived(store, sink) == keys(case, first + second)  # before the proxy goes away
    finally:
        if proxy.server is not None:
            await proxy.cut()


async def test_bad_record_is_a_data_error(case: Case, store: Store, sinks: list[Sink]) -> None:
    if case.bad is None:
        pytest.skip(case.no_bad)
    sink = await started(case, store, sinks)
    good = case.records(20, "b")
    bad = case.bad()
    batch = SinkBatch("b", [*good[:10], bad, *good[10:]])
    dead, first = await deliver(sink, batch)
    assert first is not None, "the bad record was accepted"
    if isinstance(first, RejectedRecords):
        assert 10 in first.rejected, f"the refused record is named: {first.rejected}"
    assert [r.record_id for r in dead] == [bad.record_id], "only the bad record is dead-lettered"
    assert await arrived(store, sink) == keys(case, good), "every other record arrives, once"
    if not case.at_least_once:  # a crash before the ack: the whole batch again, its halves already written
        await deliver(sink, batch)
        assert await arrived(store, sink) == keys(case, good), "the halves already written are not written again"


async def test_awkward_text_is_written(case: Case, store: Store, sinks: list[Sink]) -> None:
    sink = await started(case, store, sinks)
    records = [*case.records(4, "a"), case.awkward("a")]
    await bounded(sink.write(SinkBatch("a", records)))
    assert sum((await arrived(store, sink)).values()) == len(records)


async def test_closes_twice(case: Case, store: Store, sinks: list[Sink]) -> None:
    sink = await started(case, store, sinks)
    await bounded(sink.write(SinkBatch("c", case.records(3, "c"))))
    await bounded(sink.close())
    await bounded(sink.close())
    never_started = make(store.pump(), sinks)
    await bounded(never_started.close())
    await bounded(never_started.close())


async def test_check_passes_live_and_fails_clearly_dead(case: Case, store: Store, sinks: list[Sink]) -> None:
    live = make(store.pump(), sinks)
    await bounded(live.check())
    await bounded(live.close())
    if case.check_blind:
        pytest.skip(f"check() passes on the live server; on a dead one it cannot tell: {case.check_blind}")
    dead = make(dead_entry(case, store), sinks)
    with pytest.raises(RetriableError) as failed:
        await bounded(dead.check())
    message = str(failed.value)
    assert message and "\n" not in message and len(message) <= 600, message
