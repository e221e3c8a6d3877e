"""The daemon: wires source, fan-out, pump workers and telemetry, and owns start and stop.

Start-up order: health endpoints (so probes answer at once, as Tyk's do) → Redis (waited for,
never fatal) → register this instance and return whatever a previous run of it left claimed →
pump workers → the claim loop and housekeeping (lease renewal, reaping abandoned batches,
gauges). ``pump run --once`` runs the same code until the lists and the healthy pumps' backlogs
are empty, then stops.

Stop (SIGTERM/SIGINT, or the end of ``--once``): stop claiming, let the pumps finish what they
hold within ``telemetry.shutdown_timeout``, return every unfinished batch to the head of its list,
and log one summary line. A second signal cuts the wait short.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

from pump import __version__
from pump.config.model import Config
from pump.delivery.ack import Acknowledger, until_ok
from pump.delivery.deadletter import UNDECODABLE, deadletter_key
from pump.delivery.fanout import Fanout
from pump.delivery.worker import PumpWorker
from pump.sinks import build as build_sink
from pump.sinks import uptime_module
from pump.sinks.base import Sink, SinkContext
from pump.source.connect import connect, describe
from pump.source.redis_list import UPTIME_LIST, RedisSource, SourceKey, gateway_lists
from pump.telemetry.health import HealthServer, Probe
from pump.telemetry.metrics import Metrics
from pump.transforms import build_view

log = logging.getLogger(__name__)


#: The uptime pump's name (it has no entry under ``pumps``; Tyk configures it apart too).
UPTIME_PUMP = "uptime"


def build_uptime_sink(cfg: Config) -> Sink | None:
    """The sink for host-checker records, from ``uptime_pump_config``, or None.

    Without one the uptime list is left alone: draining it nowhere would lose it."""
    up = cfg.uptime_pump_config
    if cfg.dont_purge_uptime_data or up is None:
        return None
    kind = up.uptime_type or "mongo"
    if kind == "mongo" and not up.mongo_url:
        return None
    return uptime_module(kind).build_uptime(cfg)  # type: ignore[no-any-return]


def tune_gc() -> None:
    """Keep Python's cycle collector out of the hot path.

    Records, documents and rows hold no reference cycles, so reference counting frees them; the
    cycle collector only walks the millions of objects of the batches in flight, again and again
    (measured: ~15% of the pipeline's time). Freeze what start-up created and collect far less
    often; anything cyclic is still collected, just later."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


async def finish(task: asyncio.Task[Any], grace: float) -> None:
    """Let ``task`` end within ``grace`` seconds, then cancel it; never wait for it forever.

    A cancellation can be lost (a library may turn it into its own timeout error, which a retry
    loop then absorbs), so a shutdown that simply awaited a cancelled task could hang for good."""
    done, _ = await asyncio.wait({task}, timeout=grace)
    if done:
        return
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=5)
    if not done:
        log.warning("A task did not stop; leaving it behind.", extra={"task": task.get_name()})


def dump_tasks() -> None:
    """SIGUSR1: log where every task of the loop is waiting (for a pump that seems stuck)."""
    import io

    for task in asyncio.all_tasks():
        buf = io.StringIO()
        task.print_stack(limit=12, file=buf)
        log.warning("Task stack.", extra={"task": task.get_name(), "stack": buf.getvalue()})


class Daemon:
    def __init__(
        self,
        config: Config,
        *,
        once: bool = False,
        registry: CollectorRegistry | None = None,
        handle_signals: bool = True,
        serve_health: bool = True,
        once_patience: float = 10.0,
    ) -> None:
        self.config = config
        self.once = once
        self.handle_signals = handle_signals
        self.serve_health = serve_health
        self.once_patience = once_patience
        self.metrics = Metrics(registry)
        self.stop_reason = ""
        self._stop = asyncio.Event()
        self._halt = asyncio.Event()  # set once shutdown begins: background loops end between rounds
        self._forced = False
        self.workers: dict[str, PumpWorker] = {}
        self.fanout: Fanout | None = None
        self.source: RedisSource | None = None
        self.health: HealthServer | None = None
        self.started_at = time.monotonic()
        self.crashed = False

    def supervise(self, task: asyncio.Task[Any]) -> asyncio.Task[Any]:
        """A background task that ends with an exception is a bug: log it with its traceback and
        stop the whole daemon (exit 1) rather than run on half-dead. Batches are safe in Redis."""

        def done(t: asyncio.Task[Any]) -> None:
            if t.cancelled() or t.exception() is None:
                return
            self.crashed = True
            log.critical("Internal task crashed; stopping.", exc_info=t.exception(), extra={"task": t.get_name()})
            self.request_stop("internal error")

        task.add_done_callback(done)
        return task

    # -- public ----------------------------------------------------------------------------------

    def request_stop(self, reason: str = "request") -> None:
        if self._stop.is_set():
            self._forced = True
            log.warning("Second stop request: not waiting for in-flight writes.", extra={"reason": reason})
        self.stop_reason = self.stop_reason or reason
        self._stop.set()
        if self.fanout is not None:
            self.fanout.stop()

    async def run(self) -> int:
        """Run until stopped (or, with ``once``, until drained). Returns the process exit code."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        if self.handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_stop, sig.name)
            loop.add_signal_handler(signal.SIGUSR1, dump_tasks)
        await self._start_telemetry()
        redis = connect(cfg.analytics_storage_config)
        self.source = source = RedisSource(redis, cfg.delivery.namespace, cfg.delivery.instance_id, cfg.delivery.lease_seconds)
        try:
            info = await until_ok(lambda: redis.info("server"), "connect", self.metrics)
            log.info(
                "Connected to Redis.",
                extra={"redis": describe(cfg.analytics_storage_config), "version": info.get("redis_version", "?")},
            )
            self._build(source)
            assert self.fanout is not None
            await until_ok(source.register, "register", self.metrics)
            returned = await until_ok(lambda: source.adopt_own(self.all_keys()), "adopt", self.metrics)
            self.metrics.records_requeued.labels("restart").inc(returned)
            tune_gc()
            for worker in self.workers.values():
                for task in worker.start():
                    self.supervise(task)
            log.info(
                "Pump started.",
                extra={
                    "version": __version__,
                    "instance_id": cfg.delivery.instance_id,
                    "pumps": ",".join(self.workers),
                    "claim_size": cfg.claim_size(),
                    "mode": "once" if self.once else "daemon",
                },
            )
            housekeeping = self.supervise(asyncio.create_task(self._housekeeping(), name="housekeeping"))
            claim_loop = self.supervise(asyncio.create_task(self.fanout.run(), name="claim-loop"))
            if self.once:
                await self._run_once(claim_loop)
            else:
                await self._stop.wait()
            return await self._shutdown(claim_loop, housekeeping)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(redis.aclose(), timeout=5)
            if self.health is not None:
                await self.health.close()

    def all_keys(self) -> list[SourceKey]:
        keys = list(self.fanout.keys) if self.fanout else []
        for worker in self.workers.values():
            keys.extend(worker.backlogs)
        return keys

    # -- wiring ----------------------------------------------------------------------------------

    def _build(self, source: RedisSource) -> None:
        cfg = self.config
        ns = cfg.delivery.namespace
        keys = [SourceKey(name, wire, ns) for name, wire in gateway_lists(cfg.analytics_storage_config.prefix)]
        acks = Acknowledger(source, self.metrics)
        for name, pump in cfg.pumps.items():
            sink = build_sink(SinkContext(name, pump, cfg))
            self.workers[name] = PumpWorker(
                name,
                sink,
                build_view(pump, cfg),
                cfg.delivery_for(name),
                pump.timeout,
                self.metrics,
                acks,
                namespace=ns,
                once=self.once,
                once_patience=self.once_patience,
            )
            self.metrics.init_pump(name)
        uptime = build_uptime_sink(cfg)
        if uptime is not None:
            keys.append(SourceKey(UPTIME_LIST, "uptime", ns, frozenset({UPTIME_PUMP})))
            self.workers[UPTIME_PUMP] = PumpWorker(
                UPTIME_PUMP, uptime, lambda records: records, cfg.delivery, 0, self.metrics, acks,
                namespace=ns, once=self.once, once_patience=self.once_patience,
            )  # fmt: skip
            self.metrics.init_pump(UPTIME_PUMP)
        for key in keys:
            self.metrics.init_source(key.name)
        self.fanout = Fanout(
            source,
            keys,
            self.workers,
            frozenset(n for n in self.workers if n != UPTIME_PUMP),
            acks,
            self.metrics,
            cfg.claim_size(),
            cfg.delivery.max_batches_in_flight,
            cfg.purge_delay,
            once=self.once,
        )

    async def _start_telemetry(self) -> None:
        cfg = self.config
        tel = cfg.telemetry
        if tel.metrics_address:
            host, _, port = tel.metrics_address.rpartition(":")
            start_http_server(int(port), addr=host or "0.0.0.0", registry=self.metrics.registry)
        if self.serve_health and tel.health_enabled:
            self.health = HealthServer(
                Probe(self._alive, self._ready),
                self.metrics.registry,
                cfg.health_check_endpoint_name or "health",
                host=tel.health_bind,
                port=cfg.health_check_endpoint_port or 8083,
                serve_metrics=not tel.metrics_address,
            )
            await self.health.start()

    # -- probes ----------------------------------------------------------------------------------

    def _alive(self) -> bool:
        """The claim loop ticks on every claim and every Redis retry; silence means it is stuck."""
        if self.fanout is None:
            return True
        limit = max(60.0, 3 * self.config.purge_delay)
        return time.monotonic() - self.fanout.last_tick < limit

    def _ready(self) -> tuple[bool, dict[str, Any]]:
        if self._stop.is_set():
            return False, {"reason": "draining"}
        threshold = self.config.telemetry.ready_failing_after
        now = time.monotonic()
        failing = {
            name: w.last_error[:200]
            for name, w in self.workers.items()
            if w.failing_since is not None and now - w.failing_since > threshold
        }
        if failing:
            return False, {"reason": "pumps failing", "pumps": failing}
        return True, {}

    # -- background ------------------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        """Renew leases, return abandoned batches, and refresh the gauges."""
        assert self.source is not None and self.fanout is not None
        period = min(self.config.delivery.lease_seconds / 3, 5.0)
        last_reap = 0.0
        while not self._halt.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._halt.wait(), timeout=period)
            if self._halt.is_set():
                return
            try:
                await self.source.heartbeat()
                if time.monotonic() - last_reap >= self.config.delivery.lease_seconds / 2:
                    last_reap = time.monotonic()
                    n = await self.source.reap(self.all_keys())
                    self.metrics.records_requeued.labels("expired").inc(n)
                await self._refresh_gauges()
            except Exception as exc:  # Redis down: the claim loop reports it; try again next round
                log.debug("Housekeeping round failed.", extra={"error": str(exc)})

    async def _refresh_gauges(self) -> None:
        assert self.source is not None and self.fanout is not None
        ns = self.config.delivery.namespace
        gateway = [k.name for k in self.fanout.keys]
        backlogs = [(name, k.name) for name, w in self.workers.items() for k in w.backlogs]
        dlqs = [(name, deadletter_key(ns, name)) for name in [*self.workers, UNDECODABLE]]
        lengths = await self.source.lengths(gateway + [k for _, k in backlogs] + [k for _, k in dlqs])
        for name, n in zip(gateway, lengths, strict=False):
            self.metrics.source_backlog.labels(name).set(n)
        per_pump: dict[str, int] = {}
        for (pump, _), n in zip(backlogs, lengths[len(gateway) :], strict=False):
            per_pump[pump] = per_pump.get(pump, 0) + n
        for pump, n in per_pump.items():
            self.metrics.backlog_records.labels(pump).set(n)
        for (pump, _), n in zip(dlqs, lengths[len(gateway) + len(backlogs) :], strict=False):
            self.metrics.deadletter_records.labels(pump).set(n)
        self.metrics.oldest_unacked.set(self.source.oldest_age())
        self.metrics.batches_in_flight.set(len(self.source.inflight))

    async def _run_once(self, claim_loop: asyncio.Task[None]) -> None:
        assert self.fanout is not None
        stop_wait = asyncio.create_task(self._stop.wait())
        await asyncio.wait({claim_loop, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        if not self._stop.is_set():
            settle = asyncio.create_task(self.fanout.settle())
            await asyncio.wait({settle, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            settle.cancel()
        stop_wait.cancel()
        self.stop_reason = self.stop_reason or "drained"

    async def _shutdown(self, claim_loop: asyncio.Task[None], housekeeping: asyncio.Task[None]) -> int:
        assert self.fanout is not None and self.source is not None
        self.fanout.stop()
        self._halt.set()
        # Let the loop finish the claim it has on the wire rather than cancel it: a cancelled
        # claim may have moved a batch in Redis that this process would then never hand back.
        await finish(claim_loop, grace=30)
        timeout = 0 if self._forced else self.config.telemetry.shutdown_timeout
        deadline = time.monotonic() + timeout
        await asyncio.gather(*(w.stop(deadline) for w in self.workers.values()))
        returned = await self.fanout.acks.release_all()
        await finish(housekeeping, grace=10)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.source.unregister(), timeout=5)
        delivered = {n: w.delivered for n, w in self.workers.items()}
        dead = sum(w.gave_up_records for w in self.workers.values())
        failing = [n for n, w in self.workers.items() if w.failing]
        log.info(
            f"Shutdown on {self.stop_reason or 'request'} ◆ {self.fanout.batches_acked} batches done "
            f"◆ {sum(delivered.values())} records written ◆ {dead} dead-lettered ◆ {returned} returned to Redis",
            extra={"delivered": delivered, "failing": ",".join(failing) or "-"},
        )
        if self.crashed:
            return 1
        if self.once:
            waiting = await self._backlog_sizes()
            if waiting:
                log.error(
                    "Some pumps could not deliver everything; those records wait in their Redis backlog for the next run.",
                    extra={"backlogs": waiting},
                )
                return 1
        return 0

    async def _backlog_sizes(self) -> dict[str, int]:
        """Records parked per pump, for the ``--once`` exit code (0 when all was delivered)."""
        assert self.source is not None
        names = [(pump, key.name) for pump, w in self.workers.items() for key in w.backlogs]
        try:
            lengths = await self.source.lengths([k for _, k in names])
        except Exception:
            return {"unknown (Redis unavailable)": 1}
        out: dict[str, int] = {}
        for (pump, _), n in zip(names, lengths, strict=True):
            if n:
                out[pump] = out.get(pump, 0) + n
        return out
