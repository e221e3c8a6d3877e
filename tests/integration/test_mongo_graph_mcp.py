"""``mongo-graph`` and ``mongo-mcp`` (issue 11) on the real Mongo-wire server: Tyk's GraphRecord and
MCPRecord documents from the golden Go-encoded records, only GraphQL (resp. MCP) records kept,
written once per record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pump.decode.msgpack import decode_record
from pump.sinks.base import SinkBatch
from pump.sinks.mongo.documents import to_document
from pump.sinks.mongo.graph import graph_document, keeps_graph, keeps_mcp, mcp_document
from pump.sinks.mongo.raw import Meta, MongoSink

pytestmark = pytest.mark.integration

CASES = json.loads((Path(__file__).resolve().parents[1] / "fixtures/tyk/records.json").read_text())["cases"]


async def sink_of(open_sinks: list[Any], url: str, graph: bool) -> MongoSink:
    meta = Meta.model_validate({"mongo_url": url, "collection_name": "tyk_graph" if graph else "tyk_mcp"})
    kwargs: dict[str, Any] = (
        {"keep": keeps_graph, "document": graph_document, "strip": False} if graph else {"keep": keeps_mcp, "document": mcp_document}
    )
    sink = MongoSink("g" if graph else "m", meta, 10, skip=False, **kwargs)
    open_sinks.append(sink)
    await sink.start()
    return sink


async def test_graph_and_mcp_documents(db_url: str, db: Any, open_sinks: list[Any]) -> None:
    records = [decode_record(bytes.fromhex(c["msgpack_hex"])) for c in CASES]
    by_name = dict(zip((c["name"] for c in CASES), records, strict=True))
    graph, mcp = await sink_of(open_sinks, db_url, True), await sink_of(open_sinks, db_url, False)
    for s in (graph, mcp):
        await s.write(SinkBatch("b1", records))
        await s.write(SinkBatch("b1", records))  # redelivered: nothing twice

    (g,) = list(db.tyk_graph.find())
    want = by_name["graphql_mutation"]
    assert g["_id"] == to_document(want)["_id"] and g["path"] == want.path and g["geo"]["country"]["isocode"] == "GB"
    assert list(g)[:2] == ["_id", "types"] and list(g)[-5:] == ["operationtype", "variables", "rootfields", "errors", "haserrors"]
    assert g["types"] == {"Mutation": ["createUser"], "User": ["id", "name"]}
    assert (g["operationtype"], g["variables"], g["rootfields"], g["haserrors"]) == ("Mutation", '{"name":"Ada"}', ["createUser"], True)
    assert g["errors"] == [
        {"message": "Cannot return null for non-nullable field User.name", "path": ["createUser", "name"]},
        {"message": "index error", "path": ["createUser", 0]},
    ]
    assert "graphql_stats" not in g and "mcpstats" not in g

    (m,) = list(db.tyk_mcp.find())
    want = by_name["mcp_tools_call"]
    assert list(m)[:4] == ["_id", "jsonrpcmethod", "primitivetype", "primitivename"]
    assert (m["jsonrpcmethod"], m["primitivetype"], m["primitivename"]) == ("tools/call", "tool", "get_weather")
    assert m["path"] == want.path and m["_id"] == to_document(want)["_id"]
    assert graph_document(want)["errors"] == [] and mcp_document(by_name["typical_rest_get"])["jsonrpcmethod"] == ""


# --------------------------------------------------------------------------- mongo-mcp-aggregate


def mcp_record(api: str, method: str, code: int = 200, latency: int = 10, org: str = "org1") -> Any:
    from datetime import UTC, datetime

    from pump.record import Record

    stats = {"IsMCP": True, "JSONRPCMethod": method, "PrimitiveType": "tool", "PrimitiveName": "weather"}
    t = datetime(2024, 1, 15, 13, 45, tzinfo=UTC)
    return Record(org_id=org, api_id=api, response_code=code, latency_total=latency, request_time=latency, timestamp=t, mcp_stats=stats)


async def test_mcp_aggregate_documents_per_api_written_once(db_url: str, db: Any, open_sinks: list[Any]) -> None:
    from pump.sinks.mongo.aggregate import Meta as AggMeta
    from pump.sinks.mongo.mcp_aggregate import MongoMCPAggregateSink

    sink = MongoMCPAggregateSink("magg", AggMeta.model_validate({"mongo_url": db_url, "use_mixed_collection": True}), 10)
    open_sinks.append(sink)
    await sink.start()
    records = [mcp_record("a1", "tools/call"), mcp_record("a1", "tools/call", 500, 30), mcp_record("a2", "resources/read")]
    rest = decode_record(bytes.fromhex(CASES[0]["msgpack_hex"]))  # a REST record: not aggregated here
    await sink.write(SinkBatch("b1", [*records, rest]))
    await sink.write(SinkBatch("b1", [*records, rest]))  # redelivered: counted once
    await sink.write(SinkBatch("b2", records[:1]))

    docs = {d["owner_apiid"]: d for d in db.z_tyk_mcp_analyticz_aggregate_org1.find()}
    assert set(docs) == {"a1", "a2"} and db.z_tyk_mcp_analyticz_aggregate_org1.count_documents({}) == 2
    a1 = docs["a1"]
    assert (a1["total"]["hits"], a1["total"]["errortotal"]) == (3, 1)
    call = a1["methods"]["tools/call"]
    assert (call["hits"], call["success"], call["errortotal"], call["errormap"]) == (3, 2, 1, {"500": 1})
    assert (call["latency"], call["minlatency"], call["maxlatency"]) == (50 / 3, 10, 30)
    assert a1["primitives"]["tool"]["hits"] == 3 and a1["names"]["tool_weather"]["humanidentifier"] == "weather"
    assert [e["identifier"] for e in a1["lists"]["methods"]] == ["tools/call"]
    assert a1["apiid"]["a1"]["hits"] == 3 and "openconnections" not in call
    assert docs["a2"]["methods"]["resources/read"]["hits"] == 1
    assert db.tyk_mcp_analytics_aggregate.count_documents({}) == 2
    assert "z_tyk_analyticz_aggregate_" + rest.org_id not in db.list_collection_names()
