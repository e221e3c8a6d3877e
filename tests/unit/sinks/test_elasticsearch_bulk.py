"""Elasticsearch sink, pure parts: NDJSON bodies, request splitting, response classification."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from pump.errors import BatchDataError, RejectedRecords, RetriableError
from pump.sinks.elasticsearch.bulk import (
    OK,
    REJECT,
    RETRY,
    Item,
    Tally,
    action_line,
    bulk_body,
    check_response,
    chunks,
    classify_item,
    encode_document,
    parse_bulk_response,
)
from pump.sinks.elasticsearch.config import Meta
from pump.sinks.elasticsearch.sink import ElasticsearchSink
from tests.helpers import make_record


def item(pos: int, body: bytes = b'{"a":1}', index: str = "idx") -> Item:
    doc_id = f"{pos:032x}"
    return Item(pos, index, doc_id, action_line(index, doc_id), body)


# --- NDJSON ----------------------------------------------------------------------------------------


def test_action_line_create_with_index_and_id() -> None:
    line = action_line("tyk_analytics-2024.01.15", "0123456789abcdef0123456789abcdef")
    assert line == b'{"create":{"_index":"tyk_analytics-2024.01.15","_id":"0123456789abcdef0123456789abcdef"}}'
    assert json.loads(line) == {"create": {"_index": "tyk_analytics-2024.01.15", "_id": "0123456789abcdef0123456789abcdef"}}


def test_action_line_escapes_tyk_ids() -> None:
    tyk_id = '\x101f`6\ufffdt3"\\'
    assert json.loads(action_line("i", tyk_id)) == {"create": {"_index": "i", "_id": tyk_id}}


def test_action_line_with_type_for_old_elasticsearch() -> None:
    assert json.loads(action_line("i", "abc", "tyk_analytics")) == {"create": {"_index": "i", "_type": "tyk_analytics", "_id": "abc"}}


def test_action_line_without_id_lets_the_server_choose() -> None:
    assert json.loads(action_line("i", "")) == {"create": {"_index": "i"}}


def test_bulk_body_is_ndjson_with_final_newline() -> None:
    body = bulk_body([item(1, b'{"x":1}'), item(2, b'{"x":2}')])
    lines = body.split(b"\n")
    assert lines[-1] == b"" and len(lines) == 5
    assert [json.loads(line) for line in lines[:-1]] == [
        {"create": {"_index": "idx", "_id": f"{1:032x}"}},
        {"x": 1},
        {"create": {"_index": "idx", "_id": f"{2:032x}"}},
        {"x": 2},
    ]
    assert item(1, b'{"x":1}').size == len(body) // 2


# --- splitting ----------------------------------------------------------------------------------


def test_chunks_by_actions() -> None:
    out = list(chunks([item(i) for i in range(7)], max_actions=3, max_bytes=0))
    assert [[it.pos for it in c] for c in out] == [[0, 1, 2], [3, 4, 5], [6]]


def test_chunks_by_bytes() -> None:
    items = [item(i) for i in range(5)]
    size = items[0].size
    out = list(chunks(items, max_actions=0, max_bytes=2 * size + 1))
    assert [len(c) for c in out] == [2, 2, 1]
    assert all(sum(it.size for it in c) <= 2 * size + 1 for c in out)


def test_chunks_whichever_limit_comes_first() -> None:
    items = [item(i, b'{"pad":"' + b"x" * (150 if i == 2 else 1) + b'"}') for i in range(8)]
    small, big = items[0].size, items[2].size
    limit = 3 * small
    assert big <= limit < big + small
    out = list(chunks(items, max_actions=3, max_bytes=limit))
    # bytes cut before the big one and after it; the count cuts 3..5 from 6..7
    assert [[it.pos for it in c] for c in out] == [[0, 1], [2], [3, 4, 5], [6, 7]]


def test_oversized_document_travels_alone() -> None:
    items = [item(0), item(1, b'{"big":"' + b"y" * 500 + b'"}'), item(2)]
    out = list(chunks(items, max_actions=0, max_bytes=100))
    assert [[it.pos for it in c] for c in out] == [[0], [1], [2]]


def test_no_limits_means_one_request() -> None:
    assert [len(c) for c in chunks([item(i) for i in range(2500)], 0, 0)] == [2500]
    assert list(chunks([], 10, 10)) == []


# --- item classification ----------------------------------------------------------------------

MAPPING_ERROR = {
    "type": "mapper_parsing_exception",
    "reason": "failed to parse field [api_version] of type [long] in document with id 'x'",
    "caused_by": {"type": "illegal_argument_exception", "reason": 'For input string: "v2"'},
}


@pytest.mark.parametrize(
    ("status", "error", "outcome"),
    [
        (201, None, OK),
        (200, None, OK),
        (409, {"type": "version_conflict_engine_exception", "reason": "[a]: version conflict, document already exists"}, OK),
        (429, {"type": "es_rejected_execution_exception", "reason": "rejected execution"}, RETRY),
        (503, {"type": "unavailable_shards_exception", "reason": "primary shard is not active"}, RETRY),
        (500, {"type": "exception", "reason": "boom"}, RETRY),
        (403, {"type": "cluster_block_exception", "reason": "index [x] blocked by: [FORBIDDEN/8/index write (api)]"}, RETRY),
        (404, {"type": "index_not_found_exception", "reason": "no such index [x]"}, RETRY),
        (400, MAPPING_ERROR, REJECT),
        (400, {"type": "document_parsing_exception", "reason": "[1:20] failed to parse"}, REJECT),
        (413, None, REJECT),
    ],
)
def test_classify_item(status: int, error: object, outcome: int) -> None:
    assert classify_item(status, error)[0] == outcome


def test_rejection_reason_carries_the_server_reason() -> None:
    outcome, reason = classify_item(400, MAPPING_ERROR)
    assert outcome == REJECT
    assert reason.startswith("400 mapper_parsing_exception: failed to parse field [api_version]")
    assert 'caused by illegal_argument_exception: For input string: "v2"' in reason


def bulk_response(*statuses: int) -> bytes:
    items = []
    for s in statuses:
        res: dict[str, object] = {"status": s}
        if s >= 300:
            res["error"] = MAPPING_ERROR if s == 400 else {"type": f"e{s}", "reason": f"status {s}"}
        items.append({"create": res})
    return orjson.dumps({"errors": any(s >= 300 for s in statuses), "items": items})


def test_parse_bulk_response_without_errors_is_none() -> None:
    assert parse_bulk_response(bulk_response(201, 201), 2) is None


def test_parse_bulk_response_positions() -> None:
    out = parse_bulk_response(bulk_response(201, 409, 400, 429, 503, 201), 6)
    assert out is not None
    assert [o for o, _ in out] == [OK, OK, REJECT, RETRY, RETRY, OK]
    assert "mapper_parsing_exception" in out[2][1]


def test_parse_bulk_response_of_elasticsearch7_items_with_type() -> None:
    content = b'{"errors":true,"items":[{"create":{"_type":"_doc","status":400,"error":{"type":"mapper_parsing_exception","reason":"r"}}}]}'
    assert parse_bulk_response(content, 1) == [(REJECT, "400 mapper_parsing_exception: r")]


def test_parse_bulk_response_item_count_mismatch_is_retriable() -> None:
    with pytest.raises(RetriableError, match="1 items for 2 documents"):
        parse_bulk_response(bulk_response(400), 2)


def test_parse_bulk_response_not_json_is_retriable() -> None:
    with pytest.raises(RetriableError, match="not JSON"):
        parse_bulk_response(b"<html>bad gateway</html>", 1)


# --- whole-request classification --------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error", "match"),
    [
        (429, RetriableError, "HTTP 429"),
        (502, RetriableError, "HTTP 502"),
        (503, RetriableError, "HTTP 503"),
        (401, RetriableError, "authentication failed"),
        (403, RetriableError, "forbidden"),
        (404, RetriableError, "check elasticsearch_url"),
        (413, BatchDataError, "bulk_size"),
        (400, BatchDataError, "illegal_argument_exception: bad line"),
    ],
)
def test_check_response(status: int, error: type[Exception], match: str) -> None:
    body = b'{"error":{"type":"illegal_argument_exception","reason":"bad line"},"status":%d}' % status
    with pytest.raises(error, match=match):
        check_response(status, body, "_bulk")


def test_check_response_success() -> None:
    check_response(200, b"{}", "_bulk")


# --- what the delivery layer is told --------------------------------------------------------------


def tally_of(*outcomes: int) -> Tally:
    t = Tally()
    for pos, o in enumerate(outcomes):
        t.add(pos, o, "" if o == OK else f"reason {pos}")
    return t


def test_all_ok_returns() -> None:
    tally_of(OK, OK).finish()


def test_mixed_outcomes_reject_and_retry_exact_positions() -> None:
    with pytest.raises(RejectedRecords) as info:
        tally_of(OK, REJECT, RETRY, OK, RETRY).finish()
    assert info.value.rejected == {1: "reason 1"}
    assert info.value.retry == [2, 4]


def test_only_rejections_dead_letter_them_and_count_the_rest() -> None:
    with pytest.raises(RejectedRecords) as info:
        tally_of(REJECT, OK).finish()
    assert info.value.rejected == {0: "reason 0"} and info.value.retry == []


def test_everything_transient_is_a_retriable_batch() -> None:
    with pytest.raises(RetriableError, match="2 document"):
        tally_of(RETRY, RETRY).finish()


def test_some_written_some_transient_retries_only_those() -> None:
    with pytest.raises(RejectedRecords) as info:
        tally_of(OK, RETRY).finish()
    assert info.value.rejected == {} and info.value.retry == [1]


def test_add_all_maps_chunk_items_to_batch_positions() -> None:
    t = Tally()
    chunk = [item(7), item(9)]
    t.add_all(chunk, [(OK, ""), (REJECT, "bad")])
    t.add_all([item(3)], None)
    assert t.ok == 2 and t.rejected == {9: "bad"}


def test_text_that_was_not_utf8_is_encoded_with_replacement_characters() -> None:
    """orjson refuses the decoder's surrogate escapes; the document used to be refused (and its
    record dead-lettered) where Tyk's Go client writes U+FFFD."""
    doc = {"request_uri": "/caf\udce9", "tags": ["t\udcff"], "geo": {"n\udcff": 1}}
    assert json.loads(encode_document(doc)) == {"request_uri": "/caf\ufffd", "tags": ["t\ufffd"], "geo": {"n\ufffd": 1}}
    with pytest.raises(TypeError):  # what cannot be JSON at all is still refused (the sink names the record)
        encode_document({"n": 1 << 70})


@pytest.mark.parametrize(("max_actions", "max_bytes"), [(1000, 5 << 20), (3, 0), (0, 2500), (2, 1)])
@pytest.mark.parametrize("meta", [{}, {"extended_stats": True, "decode_base64": True, "rolling_index": True}, {"version": "6"}])
def test_bulk_requests_are_the_bodies_of_items_cut_into_chunks(meta: dict[str, Any], max_actions: int, max_bytes: int) -> None:
    """The sink's lean request builder sends byte for byte what ``chunks`` of ``Item``s and
    ``bulk_body`` make, cut at the same places; a record that cannot be JSON is refused alone."""
    sink = ElasticsearchSink("es", Meta.model_validate(meta))
    sink.max_actions, sink.max_bytes = max_actions, max_bytes
    records = [make_record(path=f"/p/{i}", request_time=i) for i in range(7)]
    records.insert(3, make_record(content_length=1 << 70))  # beyond 64 bits: no JSON for it
    records.insert(5, make_record(path="/caf\udcc3", tags=["t\udcff"]))  # not UTF-8: U+FFFD
    old, new = Tally(), Tally()
    expected = [([it.pos for it in c], bulk_body(c)) for c in chunks(sink._items(records, old), max_actions, max_bytes)]
    got = [(positions, b"".join(lines)) for positions, lines in sink._requests(records, new)]
    assert got == expected
    assert new.rejected.keys() == old.rejected.keys() == {3}
    assert sum(len(p) for p, _ in got) == len(records) - 1
