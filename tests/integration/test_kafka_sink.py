"""The ``kafka`` pump against a real Apache Kafka 4.4 broker (KRaft): every record arrives exactly
once under its id with Tyk's message JSON; SASL and TLS; refused and undeliverable messages."""

from __future__ import annotations

import os
import pathlib
from collections import Counter
from collections.abc import Iterator

import orjson
import pytest

from pump.errors import RejectedRecords, RetriableError
from pump.sinks.base import SinkBatch
from pump.sinks.kafka import KafkaSink, Meta
from pump.sinks.kafka.sink import build_sink
from tests import servers
from tests.integration.stream_helpers import TYK_KAFKA_KEYS, consume, unique, with_ids

pytestmark = pytest.mark.integration


def sink_for(bootstrap: str, topic: str, **meta: object) -> KafkaSink:
    return build_sink("kafka", Meta.model_validate({"broker": [bootstrap], "topic": topic, **meta}))


async def test_every_record_arrives_once_by_id_with_tyk_json(kafka_server: servers.Server) -> None:
    topic = unique("tyk-analytics")
    records = with_ids(5000, tags=["a", "b"])
    records[7].tags = None
    sink = sink_for(kafka_server.url, topic, meta_data={"env": "test", "api_name": "overridden"}, compressed=True, timeout="5s")
    try:
        await sink.start()
        await sink.write(SinkBatch("b1", records[:2500]))
        await sink.write(SinkBatch("b2", records[2500:]))
    finally:
        await sink.close()
    messages = consume(kafka_server.url, topic, 5000)
    keys = Counter(m.key().decode() for m in messages)
    assert len(messages) == 5000 and set(keys) == {r.record_id for r in records} and set(keys.values()) == {1}
    by_key = {m.key().decode(): m.value() for m in messages}
    first = orjson.loads(by_key["rid00000000"])
    assert list(first) == sorted([*TYK_KAFKA_KEYS, "env"])  # Go marshals a map with sorted keys
    assert first == {
        "timestamp": "2024-01-15T13:45:12Z",
        "method": "GET",
        "path": "/items/0",
        "raw_path": "/items/0",
        "response_code": 200,
        "alias": "",
        "api_key": "00000000",
        "api_version": "Non Versioned",
        "api_name": "overridden",  # meta_data wins over the record's field, as in Tyk
        "api_id": "727dad853a8a45f64ab981154d1ffdad",
        "org_id": "5e9d9544a1dcd60001d0ed20",
        "oauth_id": "",
        "raw_request": "",
        "request_time_ms": 0,
        "raw_response": "",
        "ip_address": "172.18.0.1",
        "host": "api.example.com",
        "content_length": 0,
        "user_agent": "curl/8.4.0",
        "tags": ["a", "b"],
        "env": "test",
    }
    assert orjson.loads(by_key["rid00000003"])["timestamp"] == "2024-01-15T13:45:12.000003Z"
    assert orjson.loads(by_key["rid00000007"])["tags"] is None  # a nil Go slice
    assert orjson.loads(by_key["rid00004999"])["request_time_ms"] == 4999 % 50


async def test_a_message_too_large_is_refused_alone(kafka_server: servers.Server) -> None:
    topic = unique("large")
    records = with_ids(10)
    records[4].raw_request = "x" * 50_000
    sink = sink_for(kafka_server.url, topic, producer_config={"message.max.bytes": 20_000})
    try:
        await sink.start()
        with pytest.raises(RejectedRecords) as info:
            await sink.write(SinkBatch("b", records))
    finally:
        await sink.close()
    assert list(info.value.rejected) == [4] and info.value.retry == []
    assert "Kafka refused the message" in info.value.rejected[4]
    assert sorted(m.key().decode() for m in consume(kafka_server.url, topic, 9)) == [r.record_id for i, r in enumerate(records) if i != 4]


async def test_unreachable_broker_is_a_retriable_error() -> None:
    port = servers.free_port()
    sink = sink_for(f"127.0.0.1:{port}", "nowhere", timeout=1, delivery_timeout=2)
    try:
        with pytest.raises(RetriableError, match="unreachable"):
            await sink.start()
        with pytest.raises(RetriableError, match="no message of the batch was acknowledged"):
            await sink.write(SinkBatch("b", with_ids(3)))
    finally:
        await sink.close()


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Server]:
    if os.environ.get(servers.ENV_VARS["kafka"]):
        pytest.skip("needs a locally started broker with SASL and TLS listeners")
    server = servers.start("kafka", pathlib.Path(tmp_path_factory.mktemp("kafka-secure")), sasl=True, tls=True)
    yield server
    server.stop()


@pytest.mark.parametrize(
    ("mechanism", "algorithm"), [("plain", ""), ("scram", ""), ("scram", "sha-512"), ("SCRAM-SHA-512", "")]
)  # fmt: skip
async def test_sasl_mechanisms_of_tyk(secure_kafka: servers.Server, mechanism: str, algorithm: str) -> None:
    d = secure_kafka.details
    topic = unique("sasl")
    sink = sink_for(
        str(d["sasl_bootstrap"]), topic, sasl_mechanism=mechanism, sasl_algorithm=algorithm,
        sasl_username=d["sasl_user"], sasl_password=d["sasl_password"],
    )  # fmt: skip
    try:
        await sink.start()
        await sink.write(SinkBatch("b", with_ids(20)))
    finally:
        await sink.close()
    assert len(consume(secure_kafka.url, topic, 20)) == 20


async def test_wrong_sasl_password_fails_retriably(secure_kafka: servers.Server) -> None:
    d = secure_kafka.details
    sink = sink_for(
        str(d["sasl_bootstrap"]), unique("sasl"), sasl_mechanism="scram", sasl_username=d["sasl_user"],
        sasl_password="not-the-password", timeout=2, delivery_timeout=3,
    )  # fmt: skip
    try:
        with pytest.raises(RetriableError):
            await sink.start()
    finally:
        await sink.close()


async def test_tls_is_verified_by_default(secure_kafka: servers.Server) -> None:
    d = secure_kafka.details
    tls = d["tls"]
    topic = unique("tls")
    good = sink_for(str(d["tls_bootstrap"]), topic, use_ssl=True, ssl_ca_file=tls["ca"])
    untrusted = sink_for(str(d["tls_bootstrap"]), topic, use_ssl=True, ssl_ca_file=tls["other_ca"], timeout=2)
    try:
        await good.start()
        await good.write(SinkBatch("b", with_ids(5)))
        with pytest.raises(RetriableError):
            await untrusted.start()
    finally:
        await good.close()
        await untrusted.close()
    assert len(consume(secure_kafka.url, topic, 5)) == 5
