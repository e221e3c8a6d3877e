"""Sockets shared by the stream and datagram sinks (syslog, statsd, dogstatsd).

Neither syslog over TCP (RFC 6587/5425) nor StatsD has an application-level acknowledgement, so
"written" can only mean what the network stack can tell:

* :class:`StreamConn` (TCP, TLS) waits, after writing a batch, until the peer's TCP stack has
  acknowledged every byte (Linux ``TIOCOUTQ`` reaches 0). A receiver that stopped, or a reset
  connection, then shows up as an error of *this* write, and the batch is written again on a new
  connection instead of being acknowledged in Redis. What the receiver loses after its kernel
  acknowledged the bytes (a crash before it processed them) nobody can see; RELP or Kafka can.
* :class:`DatagramConn` (UDP, Unix datagram) uses a *connected* socket, so the ICMP "port
  unreachable" of a receiver that is down surfaces as ``ConnectionRefusedError`` on a following
  send and the batch is retried. Datagrams sent before that error, and any dropped on the way,
  are lost without trace: that is UDP, and docs/sinks/*.md say so.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import socket
import ssl
import sys
import termios
import time
from collections.abc import Iterable

from pump.errors import RetriableError


def split_address(text: str, default_port: int) -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``, or ``host``) as a pair."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, default_port
    return host, int(port)


def unacked_bytes(sock: socket.socket) -> int | None:
    """Bytes written but not yet acknowledged by the peer (Linux); ``None`` where unknown."""
    if not sys.platform.startswith("linux"):
        return None
    buf = array.array("i", [0])
    try:
        fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, buf, True)
    except OSError:
        return None
    return int(buf[0])


class StreamConn:
    """One TCP or TLS connection, opened on demand and dropped on any error."""

    def __init__(
        self, host: str, port: int, *, tls: ssl.SSLContext | None = None, server_hostname: str = "", timeout: float = 10.0
    ) -> None:
        self.host, self.port, self.tls, self.timeout = host, port, tls, timeout
        self.server_hostname = server_hostname or host
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.what = f"{'tls' if tls else 'tcp'}://{host}:{port}"

    async def connect(self) -> None:
        if self.writer is not None and not self.writer.is_closing() and not (self.reader and self.reader.at_eof()):
            return
        await self.close()
        try:
            async with asyncio.timeout(self.timeout):
                self.reader, self.writer = await asyncio.open_connection(
                    self.host, self.port, ssl=self.tls, server_hostname=self.server_hostname if self.tls else None
                )
        except ssl.SSLCertVerificationError as exc:
            raise RetriableError(f"{self.what}: the server's certificate is not trusted ({exc.verify_message})") from exc
        except (OSError, TimeoutError) as exc:
            raise RetriableError(f"cannot connect to {self.what}: {exc or type(exc).__name__}") from exc

    async def send(self, chunks: Iterable[bytes]) -> None:
        """Write every chunk and wait until the peer acknowledged all of it (see the module docstring)."""
        await self.connect()
        writer = self.writer
        assert writer is not None
        try:
            async with asyncio.timeout(self.timeout):
                for chunk in chunks:
                    writer.write(chunk)
                    await writer.drain()
                await self._acked(writer)
        except (OSError, TimeoutError, ConnectionError) as exc:
            await self.close()
            raise RetriableError(f"sending to {self.what} failed: {exc or type(exc).__name__}") from exc

    async def _acked(self, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        delay = 0.0005
        while True:
            if (self.reader is not None and self.reader.at_eof()) or writer.is_closing():
                raise ConnectionResetError("the server closed the connection")
            left = unacked_bytes(sock) if sock is not None else None
            if not left:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    async def close(self) -> None:
        writer, self.writer, self.reader = self.writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await writer.wait_closed()


class DatagramConn:
    """A connected UDP (``host:port``) or Unix datagram (``unix:///path``) socket."""

    def __init__(self, address: str, default_port: int, timeout: float = 1.0, burst: int = 32, pause: float = 0.001) -> None:
        self.address = address
        #: After ``burst`` datagrams, wait ``pause`` seconds: a receiver reading a UDP socket
        #: drops what overflows its buffer, and a batch sent at full speed overflows it.
        self.burst, self.pause = burst, pause
        self.default_port = default_port
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.what = address if address.startswith("unix://") else f"udp://{address}"

    async def connect(self) -> socket.socket:
        if self.sock is not None:
            return self.sock
        loop = asyncio.get_running_loop()
        try:
            if self.address.startswith("unix://"):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                sock.setblocking(False)
                sock.connect(self.address.removeprefix("unix://"))
            else:
                host, port = split_address(self.address, self.default_port)
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
                family, kind, proto, _, addr = infos[0]
                sock = socket.socket(family, kind, proto)
                sock.setblocking(False)
                sock.connect(addr)
        except OSError as exc:
            raise RetriableError(f"cannot open {self.what}: {exc}") from exc
        self.sock = sock
        return sock

    async def send(self, packets: Iterable[bytes]) -> None:
        """Send each packet as one datagram. A full socket buffer (Unix sockets, a slow agent) is
        waited out up to ``timeout`` per packet."""
        sock = await self.connect()
        try:
            for n, packet in enumerate(packets, 1):
                if self.burst and n % self.burst == 0:
                    await asyncio.sleep(self.pause)
                deadline = 0.0
                while True:
                    try:
                        sock.send(packet)
                        break
                    except BlockingIOError:
                        now = time.monotonic()
                        deadline = deadline or now + self.timeout
                        if now > deadline:
                            raise TimeoutError(f"the receiver did not take a datagram within {self.timeout:g} s") from None
                        await asyncio.sleep(0.001)
        except (OSError, TimeoutError) as exc:
            self.close()
            raise RetriableError(f"sending to {self.what} failed: {exc}") from exc

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()


def pack(lines: Iterable[bytes], max_bytes: int, max_lines: int = 0, sep: bytes = b"\n", trailing: bool = False) -> list[bytes]:
    """Lines joined by ``sep`` into packets of at most ``max_bytes`` (and ``max_lines`` lines if
    set). A line longer than ``max_bytes`` travels alone. ``trailing`` ends every packet with
    ``sep`` too (a stream of lines)."""
    packets: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for line in lines:
        extra = len(line) + (len(sep) if current else 0)
        if current and (size + extra > max_bytes or (max_lines and len(current) >= max_lines)):
            packets.append(sep.join(current))
            current, size, extra = [], 0, len(line)
        current.append(line)
        size += extra
    if current:
        packets.append(sep.join(current))
    if trailing:
        packets = [p + sep for p in packets]
    return packets
