"""A write that fails because of the data: split down to the bad record, or follow the server's
per-record verdict. Exactly which parts are written, under which ids, and what is dead-lettered."""

from __future__ import annotations

from collections.abc import Callable

from pump.decode.msgpack import decode_record
from pump.errors import RejectedRecords
from tests.helpers import numbered
from tests.unit.delivery.rig import Rig, ScriptedSink


async def test_a_bad_record_is_isolated_by_splitting_and_the_rest_is_delivered(make_rig: Callable[..., Rig]) -> None:
    records = numbered(8)
    records[5].path = "/poison/5"
    sink = ScriptedSink(refuse=lambda r: "poison" in r.path)
    rig = make_rig({"p": sink}, claim_size=8).start()
    payloads = await rig.push(records)

    await rig.drain()

    [batch_id] = {bid.split(".")[0] for bid, _ in sink.calls}
    paths = [f"/items/{i}" for i in range(8)]
    paths[5] = "/poison/5"
    assert sink.calls == [
        (batch_id, paths),
        (f"{batch_id}.0", paths[:4]),
        (f"{batch_id}.1", paths[4:]),
        (f"{batch_id}.1.0", paths[4:6]),
        (f"{batch_id}.1.0.0", paths[4:5]),
        (f"{batch_id}.1.0.1", ["/poison/5"]),
        (f"{batch_id}.1.1", paths[6:]),
    ]
    assert sink.written == [p for p in paths if "poison" not in p]
    [entry] = await rig.dead("p")
    assert (entry.pump, entry.reason, entry.attempts, entry.batch_id) == ("p", "BatchDataError: value out of range (test)", 1, batch_id)
    assert entry.payload == payloads[5] and entry.record_id == decode_record(payloads[5]).record_id
    assert (entry.source, entry.wire) == (rig.key.name, "msgpack")
    assert rig.sample("pump_records_deadlettered_total", pump="p") == 1
    assert rig.sample("pump_records_delivered_total", pump="p") == 7
    assert rig.sample("pump_records_failed_total", pump="p") == 8 + 4 + 2 + 1
    assert not rig.workers["p"].failing  # bad data is not an outage
    assert await rig.list_len() == 0 and await rig.claimed_keys() == []


async def test_a_sink_bug_on_one_record_is_isolated_like_bad_data(make_rig: Callable[..., Rig]) -> None:
    records = numbered(3)
    records[0].path = "/poison/0"
    sink = ScriptedSink(outcomes=[ValueError("sink bug (test)"), ValueError("sink bug (test)")])
    rig = make_rig({"p": sink}, claim_size=3).start()
    await rig.push(records)

    await rig.drain()

    # 3 records fail → halves [0] and [1, 2]; [0] alone fails again and is dead-lettered
    assert [len(paths) for _, paths in sink.calls] == [3, 1, 2]
    assert sink.written == ["/items/1", "/items/2"]
    [entry] = await rig.dead("p")
    assert entry.reason == "ValueError: sink bug (test)"


async def test_partial_rejection_dead_letters_the_refused_and_retries_the_named(make_rig: Callable[..., Rig]) -> None:
    records = numbered(6)
    sink = ScriptedSink(outcomes=[RejectedRecords({1: "mapper_parsing_exception (test)", 4: "too big"}, retry=[3])])
    rig = make_rig({"p": sink}, claim_size=6).start()
    payloads = await rig.push(records)

    await rig.drain()

    [(batch_id, first), retry] = sink.calls
    assert len(first) == 6
    assert retry == (f"{batch_id}.r1", ["/items/3"])  # only the one the server asked for, once
    dead = await rig.dead("p")
    assert [(e.reason, e.payload, e.attempts) for e in dead] == [
        ("mapper_parsing_exception (test)", payloads[1], 1),
        ("too big", payloads[4], 1),
    ]
    assert rig.sample("pump_records_delivered_total", pump="p") == 4  # 3 with the first write, 1 retried
    assert rig.sample("pump_retries_total", pump="p") == 1
    assert len(rig.clock.sleeps) == 1 and 0 <= rig.clock.sleeps[0] <= 0.5  # one backoff, within its bound
    assert await rig.list_len() == 0 and await rig.claimed_keys() == []


async def test_rejections_of_indexes_outside_the_batch_are_ignored(make_rig: Callable[..., Rig]) -> None:
    sink = ScriptedSink(outcomes=[RejectedRecords({7: "no such record"}, retry=[9])])
    rig = make_rig({"p": sink}, claim_size=2).start()
    await rig.push(numbered(2))

    await rig.drain()

    assert len(sink.calls) == 1 and await rig.dead("p") == []
    assert rig.sample("pump_records_delivered_total", pump="p") == 2
