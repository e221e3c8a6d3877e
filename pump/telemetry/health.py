"""``/health`` (liveness), ``/ready`` (readiness) and ``/metrics`` on one small HTTP listener.

Liveness means "the process is alive and its claim loop runs", the one question a restart can
answer: it is Tyk's exact body ``{"status": "ok"}`` once the claim loop has started, for as long
as it runs — also while it waits for Redis or for a slow pump, which restarting would not fix —
and 503 with the reason (``starting``: Redis not reached yet; ``crashed``: an internal task
died) otherwise. The listener runs on the daemon's event loop, so a blocked loop does not answer
at all, which probes count as a failure. Readiness is 503 while starting, while draining for
shutdown, while Redis is unavailable (``pump_redis_up`` 0) and while a pump has been failing for
longer than the configured threshold, so an orchestrator or a dashboard sees trouble; it never
restarts anything.

A hand-written HTTP/1.1 responder keeps the dependency list short; it serves a handful of GETs
from probes and a Prometheus scraper, nothing more.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)


@dataclass
class Probe:
    """What the endpoints report; the daemon supplies the callables. ``alive`` returns True, or
    False / a one-word reason (``starting``) for a 503."""

    alive: Callable[[], bool | str]
    ready: Callable[[], tuple[bool, dict[str, object]]]


class HealthServer:
    def __init__(
        self,
        probe: Probe,
        registry: CollectorRegistry,
        health_path: str = "health",
        host: str = "0.0.0.0",
        port: int = 8083,
        serve_metrics: bool = True,
    ) -> None:
        self.probe = probe
        self.registry = registry
        self.health_path = "/" + health_path.strip("/")
        self.host = host
        self.port = port
        self.serve_metrics = serve_metrics
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        sock = self._server.sockets[0].getsockname()
        self.port = sock[1]
        log.info("Health endpoints listening.", extra={"address": f"{self.host}:{self.port}", "health": self.health_path})

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def respond(self, method: str, path: str) -> tuple[int, str, bytes]:
        """Route one request: (status, content type, body). Pure, so tests call it directly."""
        path = path.split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"method not allowed\n"
        if path == self.health_path:
            alive = self.probe.alive()
            if alive is True:
                return 200, "application/json", b'{"status": "ok"}'
            return 503, "application/json", orjson.dumps({"status": alive or "stalled"})
        if path in ("/ready", "/readyz"):
            ok, detail = self.probe.ready()
            body = orjson.dumps({"status": "ready" if ok else "not ready", **detail})
            return (200 if ok else 503), "application/json", body
        if path == "/metrics" and self.serve_metrics:
            return 200, CONTENT_TYPE_LATEST, generate_latest(self.registry)
        return 404, "text/plain", b"not found\n"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def route(method: str, path: str) -> tuple[int, str, bytes]:
            return self.respond(method, path)

        await answer_one(reader, writer, route)


Route = Callable[[str, str], Awaitable[tuple[int, str, bytes]]]
_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


async def answer_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, route: Route) -> None:
    """Read one HTTP/1.1 request, answer it with ``route(method, path)`` and close: the whole
    server of the health listener and of the ``prometheus`` pump's listener."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split(" ")
        method, path = (parts[0], parts[1]) if len(parts) >= 2 else ("GET", "/")
        status, ctype, body = await route(method, path)
        reason = _REASONS.get(status, "Error")
        writer.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        )
        if method != "HEAD":
            writer.write(body)
        await writer.drain()
    except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        pass
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass
