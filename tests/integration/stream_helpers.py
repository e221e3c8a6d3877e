"""Helpers of the kafka/syslog/statsd tests: records with ids, consuming a topic, Tyk's shapes."""

from __future__ import annotations

import time
import uuid
from typing import Any

from pump.record import Record
from tests.helpers import numbered

#: The twenty keys of Tyk's Kafka message (tyk-pump.md §4 Kafka), sorted as Go marshals a map.
TYK_KAFKA_KEYS = sorted([
    "timestamp", "method", "path", "raw_path", "response_code", "alias", "api_key", "api_version", "api_name", "api_id",
    "org_id", "oauth_id", "raw_request", "request_time_ms", "raw_response", "ip_address", "host", "content_length",
    "user_agent", "tags",
])  # fmt: skip


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def with_ids(n: int, **fields: Any) -> list[Record]:
    """``numbered`` records with record ids as the decoder gives them (distinct per record)."""
    records = numbered(n, **fields)
    for i, r in enumerate(records):
        r.record_id = f"rid{i:08d}"
        r.request_time = i % 50
    return records


def consume(bootstrap: str, topic: str, count: int, timeout: float = 60.0, extra: dict[str, Any] | None = None) -> list[Any]:
    """Every message of ``topic`` from the start, until ``count`` arrived (or the timeout); then
    half a second more, so a test also sees duplicates beyond ``count``."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("test"), "enable.auto.commit": False, **(extra or {})})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    messages: list[Any] = []
    deadline = time.monotonic() + timeout
    extra_until = None
    try:
        while time.monotonic() < deadline:
            batch = consumer.consume(1000, 0.2)
            for m in batch:
                assert m.error() is None, m.error()
                messages.append(m)
            if len(messages) >= count:
                extra_until = extra_until or time.monotonic() + 0.5
                if time.monotonic() > extra_until:
                    break
    finally:
        consumer.close()
    return messages
