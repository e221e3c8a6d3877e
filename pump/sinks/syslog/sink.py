"""The ``syslog`` sink: RFC 5424 messages over UDP, TCP or TLS, one batch per write.

TCP and TLS frame messages by octet counting (RFC 6587 §3.4.1, RFC 5425) unless ``framing: lf``;
a write returns once the receiver's TCP stack has acknowledged every byte of the batch
(:mod:`pump.sinks.netio`), so a receiver that went away fails the write and the batch is sent
again after it is back: nothing is lost for TCP/TLS except what the receiver itself loses after
acknowledging. Over UDP a message is one datagram, sent and forgotten: a receiver that is down
loses what was sent to it until the ICMP error surfaces (see docs/sinks/syslog.md).

Tyk's TLS transport never worked (Go's ``log/syslog`` knows no ``tls`` network); here it does,
with the server's certificate verified unless ``ssl_insecure_skip_verify``.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator, Sequence

from pump.errors import RejectedRecords, RetriableError
from pump.record import Record
from pump.sinks.base import SinkBatch
from pump.sinks.netio import DatagramConn, StreamConn, split_address
from pump.sinks.syslog.config import Meta
from pump.sinks.syslog.message import Encoder
from pump.sinks.tls import tls_context

log = logging.getLogger(__name__)

#: Bytes handed to the TCP stream per write call.
CHUNK = 256 * 1024


class SyslogSink:
    def __init__(self, name: str, meta: Meta) -> None:
        self.name = name
        self.meta = meta
        self.encoder = Encoder(meta)
        host, port = split_address(meta.network_addr, 514)
        self.stream: StreamConn | None = None
        self.datagram: DatagramConn | None = None
        if meta.transport == "udp":
            self.datagram = DatagramConn(meta.network_addr, 514, timeout=meta.timeout)
        else:
            self._host, self._port = host, port

    def _stream(self) -> StreamConn:
        if self.stream is None:
            tls = None
            if self.meta.transport == "tls":
                try:
                    tls = tls_context(self.meta)
                except (OSError, ssl.SSLError) as exc:
                    raise RetriableError(f"cannot set up TLS for syslog: {exc}") from exc
            self.stream = StreamConn(self._host, self._port, tls=tls, server_hostname=self.meta.ssl_server_name, timeout=self.meta.timeout)
        return self.stream

    async def start(self) -> None:
        if self.datagram is not None:
            await self.datagram.connect()
        else:
            await self._stream().connect()
        log.info(
            "Syslog pump ready.",
            extra={"pump": self.name, "transport": self.meta.transport, "addr": self.meta.network_addr, "format": self.meta.format},
        )

    async def check(self) -> None:
        await self.start()

    async def close(self) -> None:
        if self.stream is not None:
            await self.stream.close()
        if self.datagram is not None:
            self.datagram.close()

    async def write(self, batch: SinkBatch) -> None:
        records: Sequence[Record] = batch.records
        if not records:
            return
        frames: list[bytes] = []
        rejected: dict[int, str] = {}
        encoder, limit = self.encoder, self.meta.message_limit
        for pos, r in enumerate(records):
            message = encoder.message(r)
            if limit and len(message) > limit:
                rejected[pos] = (
                    f"the syslog message is {len(message)} bytes, over the limit of {limit} "
                    "(raise max_message_bytes, or trim raw data with max_record_size)"
                )
                continue
            frames.append(encoder.frame(message))
        if frames:
            if self.datagram is not None:
                await self.datagram.send(frames)
            else:
                await self._stream().send(_chunks(frames))
        if rejected:
            raise RejectedRecords(rejected)


def _chunks(frames: list[bytes]) -> Iterator[bytes]:
    buf: list[bytes] = []
    size = 0
    for f in frames:
        buf.append(f)
        size += len(f)
        if size >= CHUNK:
            yield b"".join(buf)
            buf, size = [], 0
    if buf:
        yield b"".join(buf)


def build_sink(name: str, meta: Meta) -> SyslogSink:
    if meta.log_level == 0:
        log.warning("log_level 0 sends every record as kern.emerg; set e.g. 14 (user.info) or 134 (local0.info).", extra={"pump": name})
    if meta.ssl_insecure_skip_verify:
        log.warning("ssl_insecure_skip_verify: the syslog server's certificate is NOT verified.", extra={"pump": name})
    if meta.transport == "udp":
        log.info("Syslog over UDP: messages sent while the receiver is down are lost; use tcp or tls to lose none.", extra={"pump": name})
    return SyslogSink(name, meta)
