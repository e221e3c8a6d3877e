"""``pump.sinks.netio.StreamConn`` on real loopback sockets: when does a write count as delivered."""

from __future__ import annotations

import socket
import threading

import pytest

from pump.errors import RetriableError
from pump.sinks.netio import StreamConn


async def test_a_write_into_a_connection_the_server_closed_is_not_taken_for_delivered() -> None:
    """The server closes (FIN) before the pump's event loop has read it; the pump's bytes then get
    a reset, which also empties the send queue (TIOCOUTQ reads 0, as after an acknowledgement).
    The write must still fail, so the batch is retried on a new connection, not acknowledged."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def serve() -> None:
        conn, _ = listener.accept()
        accepted.append(conn)

    thread = threading.Thread(target=serve)
    thread.start()
    conn = StreamConn("127.0.0.1", listener.getsockname()[1], timeout=5)
    try:
        await conn.connect()
        thread.join(5)
        accepted[0].close()  # FIN; no await in between, so the event loop has not read it
        with pytest.raises(RetriableError, match=r"sending to tcp://127\.0\.0\.1"):
            await conn.send([b"x" * 1000])
    finally:
        await conn.close()
        listener.close()
