"""A large aggregate's Mongo updates cut into parts (pump.aggregate.mongo_parts): together the parts
are exactly the single update, each stays within the bound, no counter is cut, and the cut does
not depend on record order (the exactly-once part markers rely on that)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from pump.aggregate import aggregate_records, as_change, as_time_update, hour_floor
from pump.aggregate.model import OrgAggregate
from pump.aggregate.mongo_parts import change_parts, count_paths, problems, set_parts
from pump.aggregate.mongo_update import document_fields
from pump.record import Record

T = datetime(2023, 4, 4, 10, 0, tzinfo=UTC)


def wide(n_paths: int, n: int) -> list[Record]:
    return [
        Record(
            org_id="o", api_id=f"api{i % 2}", api_key=f"key{i % 3}", path=f"/ep/{i % n_paths}", timestamp=T + timedelta(seconds=i),
            response_code=(200, 404, 500)[i % 3], request_time=10 + i % 7, latency_total=10, track_path=True,
        )
        for i in range(n)
    ]  # fmt: skip


def one(records: list[Record]) -> OrgAggregate:
    (agg,) = aggregate_records(records, hour_floor).values()
    return agg


def test_the_parts_together_are_the_single_update() -> None:
    agg = one(wide(300, 900))
    whole = as_change(agg)
    parts = change_parts(agg, max_paths=500)
    assert len(parts) > 5
    head = document_fields(agg)
    merged: dict[str, dict[str, object]] = {}
    for prefixes, part in parts:
        assert count_paths(part) <= 500 + len(head)
        assert all(part["$set"][k] == v for k, v in head.items()), "every part carries the document's identity"
        for op, fields in part.items():
            assert not set(fields) & set(merged.get(op, {})) - set(head), "no path in two parts"
            merged.setdefault(op, {}).update(fields)
        for p in prefixes:  # a counter is never cut: all its paths are in this part
            assert all(k in part["$inc"] for k in (p + "hits", p + "success", p + "errortotal"))
    assert merged == whole
    assert {p for prefixes, _ in parts for p in prefixes} == {k.removesuffix("hits") for k in whole["$inc"] if k.endswith(".hits")}


def test_parts_do_not_depend_on_record_order() -> None:
    """Which counters go in which part (what a part marker stands for) is fixed by the aggregate's
    keys; values like ``lasttime`` follow Tyk's last-record-wins as before."""
    records = wide(200, 600)
    shuffled = records[:]
    random.Random(3).shuffle(shuffled)
    cut = [prefixes for prefixes, _ in change_parts(one(records), 400)]
    assert cut == [prefixes for prefixes, _ in change_parts(one(shuffled), 400)] and len(cut) > 3


def test_skipped_counters_are_left_out() -> None:
    agg = one(wide(50, 100))
    parts = change_parts(agg, 200)
    skip = frozenset(parts[0][0])
    rest = change_parts(agg, 200, skip=skip)
    assert not {p for prefixes, _ in rest for p in prefixes} & skip
    assert sum(len(p) for p, _ in rest) == sum(len(p) for p, _ in parts) - len(skip)


def test_a_small_aggregate_is_one_part_equal_to_the_update() -> None:
    agg = one(wide(3, 10))
    [(_, part)] = change_parts(agg)
    assert part == as_change(agg)


def test_step2_set_in_parts_lists_weigh_their_entries() -> None:
    agg = one(wide(300, 900))
    fields = as_time_update({"endpoints": {f"e{i}": {"hits": 1} for i in range(300)}})["$set"]
    parts = set_parts(fields, 400)
    assert [k for p in parts for k in p] == list(fields) and {k: v for p in parts for k, v in p.items()} == fields
    for p in parts:
        weight = sum(max(1, len(v)) if isinstance(v, list) else 1 for v in p.values())
        assert weight <= 400 or len(p) == 1
    assert set_parts({"a": 1}, 400) == [{"a": 1}] and agg.total.hits == 900


def test_problems_a_server_would_refuse_are_found_before_writing() -> None:
    assert problems({"$inc": {"tags.ok.hits": 1}}) == ""
    assert "dollar ($) prefixed field '$bad'" in problems({"$inc": {"tags.$bad.hits": 1}})
    assert "empty field name" in problems({"$inc": {"apikeys..hits": 1}})
    assert "conflict at 'apikeys.a'" in problems({"$set": {"apikeys.a": 1}, "$inc": {"apikeys.a.b": 1}})
    assert "conflict" in problems({"$set": {"x.y": 1}, "$max": {"x.y": 2}})
    assert "conflict at 'apikeys.a'" in problems({"$inc": {"apikeys.a-1.hits": 1, "apikeys.a": 1, "apikeys.a.hits": 1}})
