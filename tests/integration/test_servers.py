"""Smoke tests for tests/servers: each real server starts, does real work the sinks rely on, and stops.

They double as executable documentation of server behaviour the sinks depend on (FerretDB's
duplicate-key reporting, TTL and capped-collection support; the Elasticsearch ``_bulk`` item error
shapes), so a change in those behaviours shows up here first. Names are randomised so the tests
also run against external servers given through the ``PUMP_TEST_*`` variables.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests import servers

integration = pytest.mark.integration


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def server_factory(tmp_path: pathlib.Path) -> Iterator[list[servers.Server]]:
    """Collects started servers and stops them even when the test fails."""
    started: list[servers.Server] = []
    yield started
    for server in reversed(started):
        server.stop()


def _start(started: list[servers.Server], name: str, workdir: pathlib.Path, **options: object) -> servers.Server:
    server = servers.start(name, workdir, **options)
    started.append(server)
    return server


# ------------------------------------------------------------------------------------------ redis


@integration
def test_redis_set_get(server_factory: list[servers.Server], tmp_path: pathlib.Path) -> None:
    import redis

    server = _start(server_factory, "redis", tmp_path)
    client = redis.Redis.from_url(server.url)
    key = _unique("smoke")
    try:
        assert client.set(key, b"value", ex=60)
        assert client.get(key) == b"value"
        client.rpush(f"{key}:list", b"a", b"b", b"c")
        assert client.lpop(f"{key}:list", 2) == [b"a", b"b"]  # LPOP with count (Redis >= 6.2)
    finally:
        client.delete(key, f"{key}:list")
        client.close()
    server.stop()
    server.stop()  # idempotent


@integration
def test_redis_appendonly_survives_sigkill(server_factory: list[servers.Server], tmp_path: pathlib.Path) -> None:
    import redis

    if os.environ.get(servers.ENV_VARS["redis"]):
        pytest.skip("needs a locally started Redis to kill")
    first = _start(server_factory, "redis", tmp_path, appendonly=True)
    client = redis.Redis.from_url(first.url)
    client.rpush("queue", *[f"rec{i}".encode() for i in range(100)])
    client.close()
    assert first.pid is not None
    os.kill(first.pid, signal.SIGKILL)
    first.stop()  # reaps the killed process; must not raise
    assert first.process is not None and first.process.returncode == -signal.SIGKILL

    second = _start(server_factory, "redis", tmp_path, port=first.port, appendonly=True)
    assert second.url == first.url
    client = redis.Redis.from_url(second.url)
    try:
        assert client.llen("queue") == 100
    finally:
        client.close()


@integration
def test_start_failure_reports_log_tail(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(servers.ENV_VARS["redis"], raising=False)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(servers.ServerError) as excinfo:
            servers.start("redis", tmp_path, port=port, timeout=10)
    message = str(excinfo.value)
    assert "exited with code" in message
    assert "Address already in use" in message  # the tail of redis.log


def test_env_override_starts_nothing(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUMP_TEST_MONGO_URL", "mongodb://db.example:27017/")
    server = servers.start("mongo", tmp_path)
    assert server.external and server.url == "mongodb://db.example:27017/"
    assert server.pid is None
    server.stop()
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------- postgres


@integration
def test_postgres_copy_and_select(server_factory: list[servers.Server], tmp_path: pathlib.Path) -> None:
    import psycopg

    server = _start(server_factory, "postgres", tmp_path)
    table = _unique("smoke")
    with psycopg.connect(server.url, autocommit=True) as conn:
        assert conn.info.server_version >= 150000 or server.external
        conn.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, api_id text NOT NULL, payload jsonb)")
        try:
            with conn.cursor() as cur, cur.copy(f"COPY {table} (id, api_id, payload) FROM STDIN") as copy:
                copy.write_row((1, "api-1", json.dumps({"code": 200})))
                copy.write_row((2, "api-2", json.dumps({"code": 500})))
            rows = conn.execute(f"SELECT id, api_id, payload->>'code' FROM {table} ORDER BY id").fetchall()
            assert rows == [(1, "api-1", "200"), (2, "api-2", "500")]
        finally:
            conn.execute(f"DROP TABLE {table}")


# ---------------------------------------------------------------------------------- mongo/FerretDB


@integration
def test_mongo_ferretdb_behaviour(server_factory: list[servers.Server], tmp_path: pathlib.Path) -> None:
    import pymongo
    from pymongo.errors import BulkWriteError, OperationFailure

    server = _start(server_factory, "mongo", tmp_path)
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(server.url, serverSelectionTimeoutMS=5000)
    db = client[_unique("smoke")]
    try:
        events = db["events"]

        # insert_many(ordered=False): every duplicate is reported as its own code-11000 write error
        # (index = position in the batch) and all other documents are inserted.
        with pytest.raises(BulkWriteError) as excinfo:
            events.insert_many(
                [{"_id": 1, "n": 1}, {"_id": 1, "n": 2}, {"_id": 2, "n": 3}, {"_id": 2, "n": 4}, {"_id": 3}],
                ordered=False,
            )
        details = excinfo.value.details
        assert details["nInserted"] == 3
        assert [(e["index"], e["code"]) for e in details["writeErrors"]] == [(1, 11000), (3, 11000)]
        assert all(e["errmsg"].startswith("E11000 duplicate key error") for e in details["writeErrors"])
        assert sorted(d["_id"] for d in events.find()) == [1, 2, 3]

        # Upsert with the aggregate operators the Mongo aggregate sink uses.
        aggregates = db["aggregates"]
        after = pymongo.ReturnDocument.AFTER
        update = {"$inc": {"hits": 1}, "$set": {"last": "a"}, "$max": {"max_ms": 50}, "$min": {"min_ms": 50}}
        first = aggregates.find_one_and_update({"_id": "k"}, update, upsert=True, return_document=after)
        assert first == {"_id": "k", "hits": 1, "last": "a", "max_ms": 50, "min_ms": 50}
        update = {"$inc": {"hits": 2}, "$set": {"last": "b"}, "$max": {"max_ms": 20}, "$min": {"min_ms": 20}}
        second = aggregates.find_one_and_update({"_id": "k"}, update, upsert=True, return_document=after)
        assert second == {"_id": "k", "hits": 3, "last": "b", "max_ms": 50, "min_ms": 20}

        # TTL indexes: FerretDB v1 refuses them with NotImplemented (238); real MongoDB accepts.
        try:
            events.create_index([("expireAt", pymongo.ASCENDING)], expireAfterSeconds=3600)
        except OperationFailure as exc:
            assert exc.code == 238, exc.details
            assert exc.details is not None and exc.details.get("codeName") == "NotImplemented"
        else:
            assert server.external, "FerretDB v1 is expected to reject TTL indexes"

        # Capped collections are created with their options, but embedded FerretDB never trims them.
        capped = db.create_collection("capped", capped=True, size=64 * 1024, max=3)
        assert capped.options().get("capped") is True
        capped.insert_many([{"i": i} for i in range(5)])
        assert capped.count_documents({}) in (3, 5)

        assert events.create_index([("n", pymongo.ASCENDING)], unique=True) == "n_1"
    finally:
        client.drop_database(db.name)
        client.close()  # FerretDB waits up to ~3 s for open client connections when stopping


# ------------------------------------------------------------------------ elastic (OpenSearch/ES7)


@integration
@pytest.mark.parametrize("name", ["elastic", "elastic7"])
def test_elastic_bulk_item_errors(server_factory: list[servers.Server], tmp_path: pathlib.Path, name: str) -> None:
    import httpx

    try:
        server = _start(server_factory, name, tmp_path)
    except RuntimeError as exc:
        if name == "elastic7":
            pytest.skip(f"Elasticsearch 7 unavailable: {exc}")
        raise
    prefix = _unique("tyk-smoke")
    index = f"{prefix}-2026.11.22"
    with httpx.Client(base_url=server.url, timeout=60) as http:
        template = {
            "index_patterns": [f"{prefix}-*"],
            "template": {
                "settings": {"number_of_shards": 1, "number_of_replicas": 0},
                "mappings": {
                    "properties": {
                        "api_id": {"type": "keyword"},
                        "response_code": {"type": "integer"},
                        "timestamp": {"type": "date"},
                    }
                },
            },
        }
        response = http.put(f"/_index_template/{prefix}", json=template)
        assert response.status_code == 200, response.text
        try:
            lines = [
                {"create": {"_index": index, "_id": "a"}},
                {"api_id": "x", "response_code": 200, "timestamp": "2026-11-22T10:00:00Z"},
                {"create": {"_index": index, "_id": "a"}},
                {"api_id": "x", "response_code": 201, "timestamp": "2026-11-22T10:00:01Z"},
                {"create": {"_index": index, "_id": "b"}},
                {"api_id": "y", "response_code": "not-a-number", "timestamp": "2026-11-22T10:00:02Z"},
                {"create": {"_index": index, "_id": "c"}},
                {"api_id": "z", "response_code": 500, "timestamp": "2026-11-22T10:00:03Z"},
            ]
            body = "".join(json.dumps(line) + "\n" for line in lines)
            response = http.post(
                "/_bulk",
                params={"refresh": "wait_for"},
                content=body,
                headers={"Content-Type": "application/x-ndjson"},
            )
            assert response.status_code == 200, response.text
            result = response.json()
            assert result["errors"] is True
            items = [item["create"] for item in result["items"]]
            assert [item["status"] for item in items] == [201, 409, 400, 201]
            assert items[1]["error"]["type"] == "version_conflict_engine_exception"
            assert items[2]["error"]["type"] == "mapper_parsing_exception"
            assert "[response_code]" in items[2]["error"]["reason"]
            # caused_by varies with the field type (number_format_exception for integer,
            # illegal_argument_exception for long or date), so sinks must not depend on it.
            assert "caused_by" in items[2]["error"]

            response = http.post(f"/{index}/_search", json={"query": {"match_all": {}}, "sort": ["timestamp"]})
            assert response.status_code == 200, response.text
            hits = response.json()["hits"]["hits"]
            assert [(h["_id"], h["_source"]["response_code"]) for h in hits] == [("a", 200), ("c", 500)]
            mapping = http.get(f"/{index}/_mapping").json()
            assert mapping[index]["mappings"]["properties"]["api_id"] == {"type": "keyword"}
        finally:
            http.delete(f"/{index}")
            http.delete(f"/_index_template/{prefix}")
