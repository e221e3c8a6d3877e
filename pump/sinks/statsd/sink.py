"""The sink shared by ``statsd`` and ``dogstatsd``: metric lines packed into datagrams (or TCP lines).

Lines are packed into as few datagrams as ``max_packet_bytes`` allows (1432 bytes by default, the
size that crosses any network unfragmented; 8192 on a Unix socket) instead of one datagram per
metric as Tyk's clients send. StatsD has no acknowledgement: over UDP a write "succeeds" when the
datagrams left this host, and what a receiver that is down misses is lost; a refused port
(ICMP) fails the next write, which the delivery layer retries. Over TCP a write returns when the
receiver's TCP stack has acknowledged every byte (:mod:`pump.sinks.netio`). Metrics are not
idempotent: a batch redelivered after a crash is counted twice by the receiver.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence

from pump.record import Record
from pump.sinks.base import SinkBatch
from pump.sinks.netio import DatagramConn, StreamConn, pack, split_address
from pump.sinks.statsd.config import SendMeta

log = logging.getLogger(__name__)

Lines = Callable[[Sequence[Record]], Iterator[bytes]]


class StatsdSink:
    def __init__(self, name: str, meta: SendMeta, address: str, lines: Lines, max_lines: int = 0, kind: str = "StatsD") -> None:
        self.name = name
        self.kind = kind
        self.lines = lines
        self.address = address
        self.unix = address.startswith("unix://")
        self.max_lines = max_lines
        self.max_bytes = meta.max_packet_bytes or (8192 if self.unix else 1432)
        self.datagram: DatagramConn | None = None
        self.stream: StreamConn | None = None
        if meta.transport == "tcp" and not self.unix:
            host, port = split_address(address, 8125)
            self.stream = StreamConn(host, port, timeout=meta.send_timeout)
        else:
            self.datagram = DatagramConn(address, 8125, timeout=meta.send_timeout)

    async def start(self) -> None:
        if self.stream is not None:
            await self.stream.connect()
        elif self.datagram is not None:
            await self.datagram.connect()
        log.info(f"{self.kind} pump ready.", extra={"pump": self.name, "address": self.address, "tcp": self.stream is not None})

    async def check(self) -> None:
        await self.start()

    async def close(self) -> None:
        if self.stream is not None:
            await self.stream.close()
        if self.datagram is not None:
            self.datagram.close()

    async def write(self, batch: SinkBatch) -> None:
        if not batch.records:
            return
        lines = self.lines(batch.records)
        if self.stream is not None:
            await self.stream.send(pack((line for line in lines), 256 * 1024, sep=b"\n", trailing=True))
        else:
            assert self.datagram is not None
            await self.datagram.send(pack(lines, self.max_bytes, self.max_lines))
