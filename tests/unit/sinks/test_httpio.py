"""pump/sinks/httpio.py: a response (and the request body it holds) is freed by reference
counting the moment its caller drops it, not when the rarely run cyclic collector gets to it."""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from pump.sinks import httpio


class _Ok(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


async def _alive_after_drop(url: str, plain: bool) -> bool:
    async with httpx.AsyncClient() as http:
        if plain:
            resp = await http.request("POST", url, content=b"x" * 100_000)
        else:
            resp = await httpio.request(http, "POST", url, content=b"x" * 100_000)
        assert resp.status_code == 200 and resp.content == b"{}"
        ref = weakref.ref(resp)
        del resp
        return ref() is not None


def test_a_response_is_freed_when_dropped_without_the_cycle_collector(url: str) -> None:
    gc.collect()
    gc.disable()
    try:
        # httpx alone keeps it (and its 100 kB request body) for the collector: the cycle is real
        assert asyncio.run(_alive_after_drop(url, plain=True))
        assert not asyncio.run(_alive_after_drop(url, plain=False))
    finally:
        gc.enable()
