"""The ``kafka`` sink: produces Tyk's message JSON with an idempotent librdkafka producer and
returns only when the broker has acknowledged every message of the batch.

Tyk creates a writer per batch and logs (then forgets) write errors, so a broker outage loses
the batch. Here ``write`` hands every message to the producer, then waits for each delivery
report; the delivery layer acknowledges the batch in Redis only after that. The outcome per
message decides what happens next:

* delivered: done;
* refused for good (too large for the broker, an invalid record): dead-lettered on its own
  (``RejectedRecords``), the rest of the batch is delivered;
* transient (broker down, timeouts, not enough replicas): retried by the delivery layer
  (``RetriableError`` when nothing was delivered, ``RejectedRecords.retry`` otherwise).

The producer is idempotent (``enable.idempotence``): its own retries of a request never
duplicate a message. A batch the delivery layer writes again after a failure can duplicate
messages that did reach the broker; they carry the same key (the record id) for consumers to
drop. One background thread serves the producer's callbacks (``poll``) for the sink's lifetime.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Sequence
from functools import partial
from typing import Any

import orjson

from pump.errors import RejectedRecords, RetriableError
from pump.record import Record
from pump.sinks.base import SinkBatch
from pump.sinks.kafka.config import Meta
from pump.sinks.kafka.message import Encoder

try:  # imported at module load: the registry turns an ImportError into "install pump[kafka]"
    import confluent_kafka
    from confluent_kafka import KafkaError, KafkaException, Producer
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(f"the kafka pump needs confluent-kafka ({exc})") from exc

log = logging.getLogger(__name__)

#: Errors of one message that no retry can fix: that message is dead-lettered.
#: Everything else (broker down, timeouts, leader changes, authorization) is retried: an
#: operator can fix it, and a record must not be dead-lettered for the cluster's state.
PERMANENT = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_MSG_SIZE,
        KafkaError._INVALID_ARG,
    }
)


def producer_config(meta: Meta, name: str) -> dict[str, Any]:
    """librdkafka settings for the Tyk keys (see docs/sinks/kafka.md for the mapping)."""
    timeout_ms = int((meta.timeout or 10) * 1000)
    conf: dict[str, Any] = {
        **meta.producer_config,
        "bootstrap.servers": ",".join(meta.broker),
        "client.id": meta.client_id or "tyk-pump",
        "acks": meta.acks,
        "enable.idempotence": meta.acks in ("all", "-1"),
        "socket.timeout.ms": max(timeout_ms, 10),
        "socket.connection.setup.timeout.ms": max(timeout_ms, 1000),
        "request.timeout.ms": max(timeout_ms, 1),
        "message.timeout.ms": int(meta.delivery_timeout * 1000),
        "compression.type": "snappy" if meta.compressed else "none",
        "error_cb": lambda err: _error(name, err),
        "logger": logging.getLogger("pump.sinks.kafka.librdkafka"),
    }
    conf.setdefault("linger.ms", 5)
    if meta.batch_bytes:
        conf["batch.size"] = meta.batch_bytes
    sasl = meta.mechanism
    if meta.use_ssl:
        conf["security.protocol"] = "SASL_SSL" if sasl else "SSL"
        conf["enable.ssl.certificate.verification"] = not meta.ssl_insecure_skip_verify
        conf["ssl.endpoint.identification.algorithm"] = "none" if meta.ssl_insecure_skip_verify else "https"
        if meta.ssl_ca_file:
            conf["ssl.ca.location"] = meta.ssl_ca_file
        if meta.ssl_cert_file:
            conf["ssl.certificate.location"] = meta.ssl_cert_file
            conf["ssl.key.location"] = meta.ssl_key_file
    elif sasl:
        conf["security.protocol"] = "SASL_PLAINTEXT"
    if sasl:
        conf["sasl.mechanisms"] = sasl
        conf["sasl.username"] = meta.sasl_username
        conf["sasl.password"] = meta.sasl_password.get_secret_value()
    return conf


def _error(name: str, err: KafkaError) -> None:
    """Client-level errors (broker down, authentication): logged; messages wait in the queue.
    Connection failures are already logged by librdkafka itself (the ``logger``), so only at debug."""
    if err.fatal():
        level = logging.ERROR
    elif err.code() in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN):
        level = logging.DEBUG
    else:
        level = logging.WARNING
    log.log(level, "Kafka client error.", extra={"pump": name, "error": err.str(), "code": err.name()})


class _Pending:
    """Delivery reports of one write, counted from the poll thread; ``event`` is set when every
    produced message has its report (``expect`` is called once production is over)."""

    __slots__ = ("done", "errors", "event", "expected", "lock", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.lock = threading.Lock()
        self.done = 0
        self.expected = -1
        self.errors: dict[int, KafkaError] = {}
        self.event = asyncio.Event()

    def report(self, pos: int, err: KafkaError | None) -> None:
        with self.lock:
            if err is not None:
                self.errors[pos] = err
            self.done += 1
            complete = self.done == self.expected
        if complete:
            self.loop.call_soon_threadsafe(self.event.set)

    def on_delivery(self, pos: int, err: KafkaError | None, _msg: object) -> None:
        self.report(pos, err)

    def expect(self, produced: int) -> None:
        with self.lock:
            self.expected = produced
            complete = self.done == produced
        if complete:
            self.event.set()


def is_permanent(err: KafkaError) -> bool:
    """Whether no retry can deliver this message (see :data:`PERMANENT`)."""
    return err.code() in PERMANENT


class KafkaSink:
    def __init__(self, name: str, meta: Meta) -> None:
        self.name = name
        self.meta = meta
        self.encoder = Encoder(meta.meta_data, meta.key_by_record_id)
        self.producer: Producer | None = None
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = asyncio.Lock()

    # -- lifecycle ---------------------------------------------------------------------------------

    def _producer(self) -> Producer:
        if self.producer is None:
            try:
                self.producer = Producer(producer_config(self.meta, self.name))
            except (KafkaException, ValueError, TypeError) as exc:  # unreadable certificate, bad setting
                raise RetriableError(f"cannot create the Kafka producer: {exc}") from exc
            self._stop.clear()
            self._poller = threading.Thread(target=self._poll, args=(self.producer,), name=f"kafka-poll-{self.name}", daemon=True)
            self._poller.start()
        return self.producer

    def _poll(self, producer: Producer) -> None:
        while not self._stop.is_set():
            producer.poll(0.05)

    async def start(self) -> None:
        producer = self._producer()
        await asyncio.to_thread(self._metadata, producer)
        log.info(
            "Kafka pump ready.",
            extra={
                "pump": self.name,
                "brokers": ",".join(self.meta.broker),
                "topic": self.meta.topic,
                "client": confluent_kafka.libversion()[0],
            },
        )

    def _metadata(self, producer: Producer) -> None:
        try:
            md = producer.list_topics(timeout=max(self.meta.timeout or 10, 1))
        except KafkaException as exc:
            raise RetriableError(f"Kafka brokers {','.join(self.meta.broker)} unreachable: {exc.args[0].str()}") from exc
        if not md.brokers:
            raise RetriableError(f"Kafka brokers {','.join(self.meta.broker)} listed no broker")

    async def check(self) -> None:
        await asyncio.to_thread(self._metadata, self._producer())

    async def close(self) -> None:
        producer, self.producer = self.producer, None
        if producer is None:
            return
        self._stop.set()
        if self._poller is not None:
            await asyncio.to_thread(self._poller.join)
        remaining = await asyncio.to_thread(producer.flush, 5)
        if remaining:
            log.warning(
                "Kafka producer closed with messages not yet acknowledged; they are redelivered.",
                extra={"pump": self.name, "messages": remaining},
            )

    # -- writing -----------------------------------------------------------------------------------

    async def write(self, batch: SinkBatch) -> None:
        records: Sequence[Record] = batch.records
        if not records:
            return
        async with self._lock:  # one batch at a time: delivery reports are counted per write
            await self._write(records, batch.id)

    async def _write(self, records: Sequence[Record], batch_id: str) -> None:
        producer = self._producer()
        pending = _Pending(asyncio.get_running_loop())
        produced = 0
        rejected: dict[int, str] = {}
        topic, encoder = self.meta.topic, self.encoder
        for pos, r in enumerate(records):
            try:
                value, key = encoder.value(r), encoder.key(r)
            except (TypeError, ValueError, orjson.JSONEncodeError) as exc:
                rejected[pos] = f"cannot encode the record as JSON: {exc}"
                continue
            while True:
                try:
                    producer.produce(topic, value, key, on_delivery=partial(pending.on_delivery, pos))
                    produced += 1
                    break
                except BufferError:  # the local queue is full: let deliveries drain it
                    await asyncio.sleep(0.01)
                except KafkaException as exc:
                    err = exc.args[0]
                    rejected[pos] = f"Kafka refused the message: {err.str()}"
                    break
        pending.expect(produced)
        try:
            await pending.event.wait()
        except asyncio.CancelledError:
            # A timeout of the delivery layer: the messages still queued are dropped from the
            # producer so they are not sent behind the retry; those in flight may still arrive.
            with contextlib.suppress(Exception):
                producer.purge(in_queue=True, in_flight=False, blocking=False)
            raise
        self._outcome(records, pending.errors, rejected, batch_id)

    def _outcome(self, records: Sequence[Record], errors: dict[int, KafkaError], rejected: dict[int, str], batch_id: str) -> None:
        retry: list[int] = []
        reason = ""
        fatal = False
        for pos, err in sorted(errors.items()):
            if is_permanent(err):
                rejected[pos] = f"Kafka refused the message for good: {err.str()}"
            else:
                retry.append(pos)
                reason = reason or err.str()
                fatal = fatal or err.fatal()
        if fatal:
            # A fatal error of the idempotent producer (lost sequence): start a new one.
            log.error("The Kafka producer hit a fatal error; creating a new one.", extra={"pump": self.name, "error": reason})
            self.producer = None
            self._stop.set()
        if not retry and not rejected:
            return
        if retry and len(retry) == len(records):
            raise RetriableError(f"no message of the batch was acknowledged by Kafka: {reason}")
        if retry:
            log.warning(
                "Some messages were not acknowledged; retrying only those.",
                extra={"pump": self.name, "batch_id": batch_id, "retry": len(retry), "error": reason},
            )
        raise RejectedRecords(rejected, retry)


def build_sink(name: str, meta: Meta) -> KafkaSink:
    if meta.ssl_insecure_skip_verify:
        log.warning("ssl_insecure_skip_verify: the brokers' certificates are NOT verified.", extra={"pump": name})
    if meta.mechanism and not meta.use_ssl:
        log.warning("SASL without use_ssl: the credentials cross the network in clear (PLAIN) or hashed (SCRAM).", extra={"pump": name})
    if meta.acks != "all":
        log.warning("acks is not 'all': the idempotent producer is off and a broker failure can lose messages.", extra={"pump": name})
    return KafkaSink(name, meta)
