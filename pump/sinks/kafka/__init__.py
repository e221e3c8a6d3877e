"""``kafka``: Tyk's Kafka pump — one JSON message per record, Tyk's fields, keyed by record id.

Produced with librdkafka (confluent-kafka), idempotently, and acknowledged in Redis only after
the broker acknowledged every message. See docs/sinks/kafka.md for settings and differences.

Modules: ``config`` (the ``meta`` model), ``message`` (key and value of a record), ``sink``
(the producer and its delivery reports).
"""

from __future__ import annotations

from pump.sinks.base import SinkContext
from pump.sinks.kafka.config import Meta
from pump.sinks.kafka.sink import KafkaSink, build_sink


def build(ctx: SinkContext, meta: Meta) -> KafkaSink:
    return build_sink(ctx.name, meta)


__all__ = ["KafkaSink", "Meta", "build"]
