"""The writer: tallies batches into the :class:`~pump.sinks.prometheus.store.Store` and serves it.

The listener is the pump's own small HTTP responder (``pump.telemetry.health.answer_one``) on
``listen_address``, started as soon as the daemon starts (``start_at_launch``) so Prometheus sees
the target up before the first record. Tallying and rendering run in a thread so neither a large
batch nor a scrape of many series holds up the event loop (and the health probes it answers).

A batch is applied at most once per process: the store remembers recent batch ids under its lock,
so a write the delivery layer timed out and retried — whose thread may still have finished —
never counts twice. Counters restart from zero with the process, as every Prometheus counter may.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket

from pump.errors import RetriableError
from pump.sinks.base import SinkBatch
from pump.sinks.prometheus.config import Meta
from pump.sinks.prometheus.families import (
    BUILTINS,
    LATENCY_TYPES,
    REQUEST_TIME,
    TYK_BUCKETS,
    Family,
    getters_for,
    obfuscator,
    path_getter,
)
from pump.sinks.prometheus.store import CONTENT_TYPE, Store
from pump.telemetry.health import answer_one
from pump.transforms.paths import template_path

log = logging.getLogger(__name__)


def build_families(meta: Meta) -> list[Family]:
    """Tyk's built-in families (minus ``disabled_metrics``), then the custom ones, in order."""
    path = path_getter(meta.track_all_paths, template_path if meta.template_paths else None)
    out: list[Family] = []
    for b in BUILTINS:
        if b.name in meta.disabled_metrics:
            continue
        hist = b.kind == "histogram"
        getters = getters_for(b.labels, path)
        out.append(Family(b.name, b.help, b.kind, b.labels, getters, TYK_BUCKETS if hist else (), LATENCY_TYPES if hist else ()))
    for m in meta.custom_metrics:
        labels = m.label_names
        key = obfuscator(m.key_chars) if m.obfuscate_api_keys else None
        hist = m.metric_type == "histogram"
        # Tyk gives a custom histogram named like the built-in one the built-in's three latencies.
        observe = (LATENCY_TYPES if m.name == "tyk_latency" else REQUEST_TIME) if hist else ()
        out.append(
            Family(m.name, m.help, m.metric_type, labels, getters_for(labels, path, key), m.bounds if hist else (), observe, m.mcp_only)
        )
    return out


class PrometheusSink:
    #: Ask the delivery layer to call ``start`` when the daemon starts, not at the first batch.
    start_at_launch = True

    def __init__(self, name: str, meta: Meta) -> None:
        self.name = name
        self.meta = meta
        self.store = Store(build_families(meta), meta.max_series_per_metric, meta.aggregate_observations)
        self._server: asyncio.Server | None = None
        self._starting = asyncio.Lock()

    @property
    def port(self) -> int:
        """The bound port (``listen_address`` may say 0 in tests)."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        async with self._starting:
            if self._server is not None:
                return
            host, port = self.meta.host_port
            try:
                self._server = await asyncio.start_server(self._handle, host, port)
            except OSError as exc:
                raise RetriableError(self._listen_problem(exc)) from None
            log.info(
                "Prometheus pump listening.",
                extra={"pump": self.name, "address": f"{host}:{self.port}", "path": self.meta.path, "families": len(self.store.states)},
            )

    def _listen_problem(self, exc: OSError) -> str:
        where = self.meta.listen_address
        if exc.errno == errno.EADDRINUSE:
            return f"cannot listen on {where}: the address is already in use; stop what uses it or set meta.listen_address to a free port"
        return f"cannot listen on {where}: {exc.strerror or exc}; fix meta.listen_address"

    async def write(self, batch: SinkBatch) -> None:
        await asyncio.to_thread(self.store.add, batch.records, batch.id)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def check(self) -> None:
        """``pump validate --check``: the address can be listened on."""
        host, port = self.meta.host_port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError as exc:
                raise RetriableError(self._listen_problem(exc)) from None

    async def _route(self, method: str, path: str) -> tuple[int, str, bytes]:
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"method not allowed\n"
        if path.split("?", 1)[0] != self.meta.path:
            return 404, "text/plain", b"not found\n"
        return 200, CONTENT_TYPE, await asyncio.to_thread(self.store.render)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answer_one(reader, writer, self._route)


def build_sink(name: str, meta: Meta) -> PrometheusSink:
    return PrometheusSink(name, meta)
