"""``/health`` (liveness), ``/ready`` (readiness) and ``/metrics`` on one small HTTP listener.

Liveness answers Tyk's exact body ``{"status": "ok"}`` while the claim loop is making progress and
503 when it has stalled (a deadlock is the one thing a restart fixes). Readiness is 503 while
draining for shutdown and while a pump has been failing for longer than the configured
threshold, so an orchestrator or a dashboard sees trouble; it never restarts anything.

A hand-written HTTP/1.1 responder keeps the dependency list short; it serves a handful of GETs
from probes and a Prometheus scraper, nothing more.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)


@dataclass
class Probe:
    """What the endpoints report; the daemon supplies the callables."""

    alive: Callable[[], bool]
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
            if self.probe.alive():
                return 200, "application/json", b'{"status": "ok"}'
            return 503, "application/json", b'{"status": "stalled"}'
        if path in ("/ready", "/readyz"):
            ok, detail = self.probe.ready()
            body = orjson.dumps({"status": "ready" if ok else "not ready", **detail})
            return (200 if ok else 503), "application/json", body
        if path == "/metrics" and self.serve_metrics:
            return 200, CONTENT_TYPE_LATEST, generate_latest(self.registry)
        return 404, "text/plain", b"not found\n"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = request_line.split(" ")
            method, path = (parts[0], parts[1]) if len(parts) >= 2 else ("GET", "/")
            status, ctype, body = self.respond(method, path)
            reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}[status]
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
