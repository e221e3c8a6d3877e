#!/usr/bin/env python3
"""Which Kafka client the ``kafka`` pump uses: confluent-kafka (librdkafka) against aiokafka.

    .venv/bin/python scripts/bench_kafka_clients.py [--messages 100000] [--bootstrap HOST:PORT]

Both produce the same ~1 KB keyed messages with the settings the pump needs — idempotent producer,
acks=all — and the time counts until the last delivery report (no fire-and-forget). aiokafka is
not a dependency of the pump: ``pip install aiokafka`` to run its row. Starts a broker through
tests/servers unless --bootstrap is given.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def payloads(n: int) -> list[tuple[bytes, bytes]]:
    body = b'{"method":"GET","path":"/items/%d","raw_request":"' + b"x" * 900 + b'"}'
    return [(f"id-{i:012d}".encode(), body.replace(b"%d", str(i).encode())) for i in range(n)]


def confluent(bootstrap: str, topic: str, msgs: list[tuple[bytes, bytes]]) -> float:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 5})
    p.list_topics(timeout=10)
    done = [0]
    errors = [0]

    def cb(err: object, _msg: object) -> None:
        done[0] += 1
        if err is not None:
            errors[0] += 1

    started = time.perf_counter()
    for key, value in msgs:
        while True:
            try:
                p.produce(topic, value, key, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.01)
    p.flush(60)
    elapsed = time.perf_counter() - started
    assert done[0] == len(msgs) and errors[0] == 0, (done, errors)
    return elapsed


async def aiokafka_run(bootstrap: str, topic: str, msgs: list[tuple[bytes, bytes]]) -> float:
    from aiokafka import AIOKafkaProducer

    p = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", linger_ms=5)
    await p.start()
    try:
        started = time.perf_counter()
        futures = [await p.send(topic, value, key=key) for key, value in msgs]
        await asyncio.gather(*futures)
        return time.perf_counter() - started
    finally:
        await p.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--bootstrap", default="")
    args = ap.parse_args()
    msgs = payloads(args.messages)
    server = None
    bootstrap = args.bootstrap
    if not bootstrap:
        from tests import servers

        server = servers.start("kafka", Path(tempfile.mkdtemp(prefix="bench-kafka-")))
        bootstrap = server.url
    try:
        t = confluent(bootstrap, "bench-confluent", msgs)
        print(f"confluent-kafka  {args.messages / t:>10,.0f} messages/s  ({t:.2f} s)")
        try:
            t = asyncio.run(aiokafka_run(bootstrap, "bench-aiokafka", msgs))
            print(f"aiokafka         {args.messages / t:>10,.0f} messages/s  ({t:.2f} s)")
        except ImportError:
            print("aiokafka         not installed (pip install aiokafka)")
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
