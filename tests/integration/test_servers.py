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


# ------------------------------------------------------------------------------ progress messages


def test_step_says_what_and_how_long(monkeypatch: pytest.MonkeyPatch) -> None:
    lines: list[str] = []
    monkeypatch.setattr(servers, "_live_output", lines.append)  # what reaches the terminal past pytest's capture
    with servers.step("building something", first_run="~3 min"):
        pass
    with pytest.raises(ValueError), servers.step("breaking something"):
        raise ValueError("boom")
    assert lines[0] == "[tests.servers] building something (first run only, ~3 min)…"
    assert lines[1].startswith("[tests.servers] building something… done in ")
    assert lines[2] == "[tests.servers] breaking something…"
    assert lines[3].startswith("[tests.servers] breaking something… failed after ")
    assert [servers.format_duration(s) for s in (0.023, 4.12, 41.4, 161)] == ["0.02s", "4.1s", "41s", "2m41s"]


@integration
def test_cached_start_says_one_line(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(servers.ENV_VARS["http"], raising=False)
    with servers.start("http", tmp_path) as server:
        lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[tests.servers]")]
    assert len(lines) == 1, lines
    assert f"ready at {server.url} in " in lines[0]


def test_env_override_carries_details(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUMP_TEST_SYSLOG_ADDR", "syslog.example:514")
    monkeypatch.setenv("PUMP_TEST_SYSLOG_FILE", "/var/log/received.jsonl")
    monkeypatch.delenv("PUMP_TEST_SYSLOG_TLS_ADDR", raising=False)
    server = servers.start("syslog", tmp_path)
    assert server.external and server.url == "syslog.example:514"
    assert server.details == {"file": "/var/log/received.jsonl"}
    server.stop()
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------- mysql/MariaDB


@integration
def test_mysql_password_auth_utf8mb4_and_upsert(mysql_server: servers.Server) -> None:
    import urllib.parse

    import pymysql

    dsn = urllib.parse.urlsplit(mysql_server.url)
    assert dsn.scheme == "mysql" and dsn.hostname and dsn.port and dsn.username and dsn.password
    connect = {"host": dsn.hostname, "port": dsn.port, "user": urllib.parse.unquote(dsn.username), "database": dsn.path.lstrip("/")}

    with pytest.raises(pymysql.err.OperationalError) as excinfo:
        pymysql.connect(**connect, password="not-the-password", connect_timeout=5)
    assert excinfo.value.args[0] == 1045  # Access denied: authentication is real

    table = _unique("smoke")
    conn = pymysql.connect(**connect, password=urllib.parse.unquote(dsn.password), charset="utf8mb4", autocommit=False)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            version = str(cur.fetchone()[0])
            assert "MariaDB" in version or mysql_server.external
            cur.execute(f"CREATE TABLE {table} (id VARCHAR(64) PRIMARY KEY, hits BIGINT NOT NULL, path TEXT) ENGINE=InnoDB")
            try:
                upsert = f"INSERT INTO {table} (id, hits, path) VALUES (%s, %s, %s) ON DUPLICATE KEY UPDATE hits = hits + VALUES(hits)"
                cur.executemany(upsert, [("a", 1, "/ünïcode/🚀"), ("b", 2, "/x"), ("a", 5, "/ünïcode/🚀")])
                conn.commit()
                cur.execute(f"INSERT INTO {table} (id, hits) VALUES ('c', 1)")
                conn.rollback()
                cur.execute(f"SELECT id, hits, path FROM {table} ORDER BY id")
                assert cur.fetchall() == (("a", 6, "/ünïcode/🚀"), ("b", 2, "/x"))
                with pytest.raises(pymysql.err.IntegrityError):  # strict mode: NOT NULL is enforced
                    cur.execute(f"INSERT INTO {table} (id, hits) VALUES ('d', NULL)")
            finally:
                cur.execute(f"DROP TABLE {table}")
    finally:
        conn.close()


@integration
async def test_mysql_async_driver(mysql_server: servers.Server) -> None:
    import urllib.parse

    import aiomysql

    dsn = urllib.parse.urlsplit(mysql_server.url)
    conn = await aiomysql.connect(
        host=dsn.hostname,
        port=dsn.port,
        user=urllib.parse.unquote(dsn.username or ""),
        password=urllib.parse.unquote(dsn.password or ""),
        db=dsn.path.lstrip("/"),
        charset="utf8mb4",
    )
    table = _unique("smoke")
    try:
        async with conn.cursor() as cur:
            await cur.execute(f"CREATE TABLE {table} (id BIGINT PRIMARY KEY, payload JSON)")
            try:
                await cur.executemany(f"INSERT INTO {table} VALUES (%s, %s)", [(i, json.dumps({"n": i})) for i in range(500)])
                await conn.commit()
                await cur.execute(f"SELECT COUNT(*), SUM(JSON_VALUE(payload, '$.n')) FROM {table}")
                assert await cur.fetchone() == (500, sum(range(500)))
            finally:
                await cur.execute(f"DROP TABLE {table}")
    finally:
        conn.close()


@integration
def test_mysql_persistent_restart_keeps_data(server_factory: list[servers.Server], tmp_path: pathlib.Path) -> None:
    import pymysql

    if os.environ.get(servers.ENV_VARS["mysql"]):
        pytest.skip("needs a locally started MariaDB to restart")
    first = _start(server_factory, "mysql", tmp_path, persistent=True)
    d = first.details
    args = {"host": "127.0.0.1", "port": first.port, "user": d["user"], "password": d["password"], "database": d["database"]}
    with pymysql.connect(**args, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE kept (id INT PRIMARY KEY)")
        cur.execute("INSERT INTO kept VALUES (1), (2)")
    first.stop()
    second = _start(server_factory, "mysql", tmp_path, port=first.port, persistent=True)
    with pymysql.connect(**args) as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM kept")
        assert cur.fetchone() == (2,)
    second.stop()
    kept = (tmp_path / "mysql-data").resolve()
    third = _start(server_factory, "mysql", tmp_path)  # not persistent: a fresh, empty database
    with pymysql.connect(**{**args, "port": third.port}) as conn, conn.cursor() as cur:
        cur.execute("SHOW TABLES")
        assert cur.fetchall() == ()
    third.stop()
    if kept.parent.parent.name == "pump-test-mariadb":  # data outside the workdir (we run as root)
        assert not kept.parent.exists()  # the persistent data was deleted, not left in /tmp
        assert not (tmp_path / "mysql-data").exists()


# ------------------------------------------------------------------------------------------ kafka


def _consume(conf: dict[str, Any], topic: str, count: int, timeout: float = 60.0) -> list[Any]:
    import time

    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({**conf, "group.id": _unique("smoke-group"), "enable.auto.commit": False})
    # Assigned partitions, read from the start: no group rebalance to wait for (~3 s).
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    messages: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(messages) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            messages.append(message)
    finally:
        consumer.close()
    return messages


def _produce(conf: dict[str, Any], topic: str, records: list[tuple[bytes, bytes]]) -> list[Any]:
    from confluent_kafka import Producer

    producer = Producer({**conf, "enable.idempotence": True, "acks": "all", "linger.ms": 5})
    reports: list[Any] = []
    for key, value in records:
        producer.produce(topic, value=value, key=key, headers={"source": b"pump-smoke"}, on_delivery=lambda err, msg: reports.append(err))
    assert producer.flush(30) == 0
    return reports


@integration
def test_kafka_produce_and_consume(kafka_server: servers.Server) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    conf = {"bootstrap.servers": kafka_server.url}
    topic = _unique("tyk-analytics")
    admin = AdminClient(conf)
    for future in admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)]).values():
        future.result(30)
    records = [(f"record-{i}".encode(), json.dumps({"api_id": "a", "n": i}).encode()) for i in range(20)]
    assert _produce(conf, topic, records) == [None] * 20  # every delivery report is a success
    messages = _consume(conf, topic, 20)
    assert sorted((m.key(), m.value()) for m in messages) == sorted(records)
    assert all(m.headers() == [("source", b"pump-smoke")] for m in messages)
    assert len({m.partition() for m in messages}) > 1  # keyed records spread over the partitions
    metadata = admin.list_topics(topic, timeout=10)
    assert len(metadata.topics[topic].partitions) == 3


@integration
def test_kafka_sasl_and_tls_listeners(server_factory: list[servers.Server], tmp_path: pathlib.Path) -> None:
    if os.environ.get(servers.ENV_VARS["kafka"]):
        pytest.skip("needs a locally started broker with SASL and TLS listeners")
    server = _start(server_factory, "kafka", tmp_path, sasl=True, tls=True, tls_client_auth="required")
    d = server.details
    sasl = {"bootstrap.servers": d["sasl_bootstrap"], "security.protocol": "SASL_PLAINTEXT", "sasl.username": d["sasl_user"]}
    tls = {"bootstrap.servers": d["tls_bootstrap"], "security.protocol": "SSL", "ssl.ca.location": d["tls"]["ca"]}
    client_cert = {"ssl.certificate.location": d["tls"]["client_cert"], "ssl.key.location": d["tls"]["client_key"]}
    topic = _unique("secure")
    working = [
        {**sasl, "sasl.mechanism": "PLAIN", "sasl.password": d["sasl_password"]},
        {**sasl, "sasl.mechanism": "SCRAM-SHA-256", "sasl.password": d["sasl_password"]},
        {**sasl, "sasl.mechanism": "SCRAM-SHA-512", "sasl.password": d["sasl_password"]},
        {**tls, **client_cert},
    ]
    for index, conf in enumerate(working):
        assert _produce(conf, topic, [(b"k", f"via-{index}".encode())]) == [None], conf
    assert sorted(m.value() for m in _consume({"bootstrap.servers": server.url}, topic, 4)) == [b"via-0", b"via-1", b"via-2", b"via-3"]

    refused = [
        {**sasl, "sasl.mechanism": "SCRAM-SHA-256", "sasl.password": "wrong"},
        tls,  # no client certificate while the broker requires one
    ]
    for conf in refused:
        reports = _produce({**conf, "message.timeout.ms": 1500, "log_level": 0}, topic, [(b"k", b"must-not-arrive")])
        assert reports and reports[0] is not None, conf


# ----------------------------------------------------------------------------------------- syslog


@integration
def test_syslog_rfc5424_over_udp_tcp_and_tls(syslog_server: servers.Server) -> None:
    from tests.servers import rsyslog

    if not syslog_server.details.get("file"):
        pytest.skip("PUMP_TEST_SYSLOG_FILE is needed to read what an external syslog server received")
    tag = _unique("smoke")
    sd = '[tyk@55555 api_id="abc" code="200"]'

    def message(transport: str, text: str = "") -> bytes:
        return f'<134>1 2026-11-22T10:00:00.123Z gw-1 {tag} 4242 analytics {sd} {{"via":"{transport}"{text}}}'.encode()

    rsyslog.send(syslog_server, message("udp"), transport="udp")
    # Two octet-counted messages on one TCP connection; the second has a newline inside, which only
    # octet counting (not LF framing) keeps in one piece.
    first, second = message("tcp"), message("tcp", ',"note":"line1\nline2"')
    host, port = syslog_server.url.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"".join(f"{len(m)} ".encode() + m for m in (first, second)))
    if syslog_server.details.get("tls_addr"):
        rsyslog.send(syslog_server, message("tls"), transport="tls")
    expected = 4 if syslog_server.details.get("tls_addr") else 3
    received = rsyslog.wait_for_messages(syslog_server, lambda m: m["app_name"] == tag, count=expected)
    assert len(received) == expected
    by_text = {m["msg"]: m for m in received}
    assert set(by_text) >= {'{"via":"udp"}', '{"via":"tcp"}', '{"via":"tcp","note":"line1\nline2"}'}
    udp = by_text['{"via":"udp"}']
    assert (udp["pri"], udp["facility"], udp["severity"]) == ("134", "local0", "info")
    assert (udp["hostname"], udp["procid"], udp["msgid"], udp["structured_data"]) == ("gw-1", "4242", "analytics", sd)
    assert udp["timestamp"].startswith("2026-11-22T10:00:00.123")
    assert {m["input"] for m in received} == ({"udp", "tcp", "tls"} if expected == 4 else {"udp", "tcp"})


# ----------------------------------------------------------------------------------------- statsd


@integration
def test_statsd_timing_and_counter_with_dogstatsd_tags(statsd_server: servers.Server) -> None:
    from tests.servers import statsd_exporter as statsd

    if not statsd_server.details.get("metrics_url"):
        pytest.skip("PUMP_TEST_STATSD_METRICS_URL is needed to scrape an external StatsD server")
    name = _unique("smoke")
    statsd.send(statsd_server, f"{name}.requests:3|c|#api:abc,code:200\n{name}.latency:120|ms|#api:abc".encode(), transport="udp")
    statsd.send(statsd_server, f"{name}.requests:2|c|#api:abc,code:200\n{name}.latency:80|ms|#api:abc".encode(), transport="tcp")
    statsd.send(statsd_server, f"{name}.requests:1|c|@0.5|#api:xyz,code:500".encode(), transport="udp")  # sampled: counts 2
    assert statsd.wait_for_sample(statsd_server, f"{name}_requests", {"api": "abc", "code": "200"}, value=5) == 5
    assert statsd.wait_for_sample(statsd_server, f"{name}_requests", {"api": "xyz", "code": "500"}, value=2) == 2
    assert statsd.wait_for_sample(statsd_server, f"{name}_latency_count", {"api": "abc"}, value=2) == 2
    assert statsd.samples(statsd_server)[(f"{name}_latency_sum", frozenset({("api", "abc")}))] == pytest.approx(0.2)
    assert f"# TYPE {name}_latency summary" in statsd.scrape(statsd_server)


# ---------------------------------------------------------------------------- redis cluster/sentinel


@integration
def test_redis_cluster_spreads_keys_over_masters(redis_cluster_server: servers.Server) -> None:
    from redis.cluster import RedisCluster

    client = RedisCluster.from_url(redis_cluster_server.url)
    prefix = _unique("smoke")
    try:
        keys = [f"{prefix}:{i}" for i in range(300)]
        for key in keys:
            client.rpush(key, b"rec")
        slots = {client.keyslot(k) for k in keys}
        assert len(slots) > 200
        primaries = client.get_primaries()
        assert len(primaries) == 3 or redis_cluster_server.external
        per_node = {n.name: n.redis_connection.dbsize() for n in primaries}
        assert all(count > 0 for count in per_node.values()), per_node
        # A hash tag keeps related keys in one slot, so multi-key commands work.
        client.rpush(f"{{{prefix}}}:a", b"1")
        client.rpush(f"{{{prefix}}}:b", b"2")
        assert client.lmove(f"{{{prefix}}}:a", f"{{{prefix}}}:b", "LEFT", "RIGHT") == b"1"
        assert client.lrange(f"{{{prefix}}}:b", 0, -1) == [b"2", b"1"]
    finally:
        client.delete(*keys, f"{{{prefix}}}:a", f"{{{prefix}}}:b")
        client.close()


@integration
def test_redis_sentinel_survives_failovers(server_factory: list[servers.Server], tmp_path: pathlib.Path) -> None:
    from redis.sentinel import Sentinel

    from tests.servers import redis_cluster

    if os.environ.get(servers.ENV_VARS["redis_sentinel"]):
        pytest.skip("kills the master: needs a locally started Sentinel set")
    server = _start(server_factory, "redis_sentinel", tmp_path)
    sentinels = [(h, int(p)) for h, p in (a.rsplit(":", 1) for a in server.url.split(","))]
    sentinel = Sentinel(sentinels, socket_timeout=2)
    name = server.details["master_name"]
    master = sentinel.master_for(name, socket_timeout=2)
    first = sentinel.discover_master(name)
    master.rpush("queue", b"before")

    planned = redis_cluster.sentinel_failover(server)
    assert planned != first and sentinel.discover_master(name) == planned
    master.rpush("queue", b"after-planned")  # the client follows the new master

    crashed = redis_cluster.sentinel_failover(server, kill=True)
    assert crashed != planned and sentinel.discover_master(name) == crashed
    master.rpush("queue", b"after-crash")
    assert master.lrange("queue", 0, -1) == [b"before", b"after-planned", b"after-crash"]

    revived = redis_cluster.restart_node(server, planned[1])  # the killed master comes back...
    replica = sentinel.slave_for(name, socket_timeout=2)
    import time

    deadline = time.monotonic() + 30
    while sentinel.discover_slaves(name) != [planned] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sentinel.discover_slaves(name) == [planned]  # ...as a replica of the new master
    while replica.lrange("queue", 0, -1) != master.lrange("queue", 0, -1) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert replica.lrange("queue", 0, -1) == [b"before", b"after-planned", b"after-crash"]
    assert revived.pid is not None


# ---------------------------------------------------------------------------------- HTTP receiver


@integration
def test_http_receiver_records_requests(http_receiver: Any, http_receiver_server: servers.Server) -> None:
    import gzip

    import httpx

    lines = b'{"api_id":"a","n":1}\n{"api_id":"b","n":2}\n'
    with httpx.Client(base_url=http_receiver_server.url, timeout=10) as client:
        response = client.post(
            "/services/collector/event?channel=x",
            content=gzip.compress(lines),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/x-ndjson", "Authorization": "Splunk t0ken"},
        )
        assert response.status_code == 200 and response.json() == {"ok": True, "status": 200}

        def streamed() -> Iterator[bytes]:
            yield b'{"part":'
            yield b"1}"

        assert client.put("/authors/42/books", content=streamed()).status_code == 200  # chunked body
    first, second = http_receiver.requests()
    assert (first.method, first.path, first.query, first.status) == ("POST", "/services/collector/event", "channel=x", 200)
    assert first.body == lines and first.ndjson() == [{"api_id": "a", "n": 1}, {"api_id": "b", "n": 2}]
    assert first.raw_size == len(gzip.compress(lines)) and first.body_size == len(lines)
    assert first.header("authorization") == "Splunk t0ken" and first.header("content-encoding") == "gzip"
    assert (second.method, second.path, second.json()) == ("PUT", "/authors/42/books", {"part": 1})
    assert second.header("transfer-encoding") == "chunked"
    assert http_receiver.requests(path="/authors/42/books") == [second]
    http_receiver.clear()
    assert http_receiver.requests() == []


@integration
def test_http_receiver_failure_modes(http_receiver: Any, http_receiver_server: servers.Server) -> None:
    import httpx

    http_receiver.fail(429, count=2, retry_after=3, path="/batch")
    http_receiver.fail(500, count=1, path_prefix="/other")
    http_receiver.fail(400, count=1, method="PUT", body='{"error":"bad record"}')
    http_receiver.delay(1.5, count=1, path="/slow")
    http_receiver.drop_connections(count=1, path="/drop")
    with httpx.Client(base_url=http_receiver_server.url, timeout=10) as client:
        batch = [client.post("/batch", content=b"x") for _ in range(3)]
        assert [r.status_code for r in batch] == [429, 429, 200]  # the next N requests, then back to normal
        assert [r.headers.get("retry-after") for r in batch] == ["3", "3", None]
        assert client.post("/other/path", content=b"y").status_code == 500
        assert client.post("/other/path", content=b"y").status_code == 200
        rejected = client.put("/batch", content=b"z")
        assert (rejected.status_code, rejected.json()) == (400, {"error": "bad record"})
        with pytest.raises(httpx.ReadTimeout):
            client.post("/slow", content=b"s", timeout=0.3)
        assert client.post("/slow", content=b"s").status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            client.post("/drop", content=b"d")
        assert client.post("/drop", content=b"d").status_code == 200
    statuses = [(r.path, r.status) for r in http_receiver.requests()]
    assert statuses == [
        ("/batch", 429), ("/batch", 429), ("/batch", 200), ("/other/path", 500), ("/other/path", 200),
        ("/batch", 400), ("/slow", 200), ("/slow", 200), ("/drop", None), ("/drop", 200),
    ]  # fmt: skip
    assert [rule["hits"] for rule in http_receiver.rules()] == [2, 1, 1, 1, 1]
    stats = http_receiver.stats()
    assert stats["requests"] == 10 and stats["by_status"]["closed"] == 1


@integration
def test_http_receiver_tls_with_client_certificates(server_factory: list[servers.Server], tmp_path: pathlib.Path) -> None:
    import ssl

    import httpx

    from tests.servers.http_receiver import HttpReceiver

    if os.environ.get(servers.ENV_VARS["http"]):
        pytest.skip("TLS receivers are always started locally")
    server = _start(server_factory, "http", tmp_path, tls=True, client_auth="required")
    assert server.url.startswith("https://127.0.0.1:")
    tls = server.details["tls"]
    trusted = ssl.create_default_context(cafile=tls["ca"])
    with_cert = ssl.create_default_context(cafile=tls["ca"])
    with_cert.load_cert_chain(tls["client_cert"], tls["client_key"])
    stranger = ssl.create_default_context(cafile=tls["ca"])
    stranger.load_cert_chain(tls["other_client_cert"], tls["other_client_key"])

    assert httpx.post(f"{server.url}/hook", content=b"ok", verify=with_cert).status_code == 200
    for context in (trusted, stranger):  # no client certificate / one from another CA
        with pytest.raises(httpx.HTTPError):
            httpx.post(f"{server.url}/hook", content=b"refused", verify=context)
    with pytest.raises(httpx.ConnectError):  # the server's certificate is not publicly trusted
        httpx.post(f"{server.url}/hook", content=b"unverified", verify=True)
    with HttpReceiver(server) as receiver:
        (only,) = receiver.requests()
        assert only.tls and only.body == b"ok"
        assert only.client_cert_subject == {"organizationName": "pump tests", "commonName": "pump-test-client"}
        assert receiver.stats()["tls_failures"] == 3
