"""The daemon: wires source, fan-out, pump workers and telemetry, and owns start and stop.

Start-up order: health endpoints (so probes answer at once, as Tyk's do) → Redis (waited for,
never fatal) → register this instance and return whatever a previous run of it left claimed →
pump workers → the claim loop and housekeeping (lease renewal, reaping abandoned batches,
gauges). ``pump run --once`` runs the same code until the lists and the healthy pumps' backlogs
are empty, then stops.

Stop (SIGTERM/SIGINT, or the end of ``--once``) works in every state:

* during start-up (Redis unreachable, registering): the wait is abandoned at once, nothing has
  been claimed, exit 0;
* running: stop claiming (a claim waiting for Redis gives up), let the pumps finish what they
  hold within ``telemetry.shutdown_timeout``, return every unfinished batch to the head of its
  list (for a few seconds at most if Redis is down: the leases bring them back anyway), log one
  summary line, exit 0;
* a second signal, whatever is going on: stop waiting — cancel in-flight writes, return the
  batches, exit 1.

Every wait of that sequence is bounded (``pump.delivery.tasks``), and :func:`serve` does not let
a thread stuck in a sink's blocking call hold the process after the loop has finished.

Probes. ``/health`` is liveness: 200 while the claim loop runs — including while it waits for
Redis or for a slow pump, which a restart would not fix — and 503 ``starting`` until it has
started (Redis not reached yet), 503 ``crashed`` if an internal task died. It is served by the
event loop itself, so a blocked loop does not answer at all, which a probe counts as a failure.
``/ready`` is 503 while starting, while draining, while Redis is unavailable (with its error:
the same fact as ``pump_redis_up``) and while a pump has been failing for longer than
``telemetry.ready_failing_after``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry

from pump import __version__
from pump.config.model import Config
from pump.delivery.ack import REDIS_TRANSIENT, Acknowledger, until_ok
from pump.delivery.deadletter import DeadLetters
from pump.delivery.fanout import Fanout, Intake
from pump.delivery.tasks import CANCEL_GRACE, finish, wait_tasks
from pump.delivery.worker import PumpWorker
from pump.errors import EX_TEMPFAIL, CommandError
from pump.process import dump_tasks, run_loop, tune_gc
from pump.sinks import build as build_sink
from pump.sinks.base import SinkContext
from pump.source.connect import connect, describe
from pump.source.redis_list import UPTIME_LIST, RedisSource, SourceKey, gateway_lists
from pump.telemetry.gauges import backlog_sizes, refresh_gauges
from pump.telemetry.health import HealthServer, Probe
from pump.telemetry.listen import start_listeners
from pump.telemetry.metrics import Metrics
from pump.telemetry.purgelog import PurgeLog
from pump.transforms import build_view
from pump.uptime import UPTIME_PUMP, build_uptime_sink, uptime_kind

log = logging.getLogger(__name__)
T = TypeVar("T")


def serve(config: Config, once: bool = False) -> int:
    """Run a :class:`Daemon` in a fresh event loop and return its exit code (``pump run``); see
    :func:`pump.process.run_loop` for why not ``asyncio.run``."""
    return run_loop(lambda: Daemon(config, once=once).run())


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
        self._force = asyncio.Event()  # a second stop request: stop waiting for anything
        self.workers: dict[str, PumpWorker] = {}
        self.fanout: Fanout | None = None
        self.acks: Acknowledger | None = None
        self.source: RedisSource | None = None
        self.health: HealthServer | None = None
        self.claim_loop: asyncio.Task[None] | None = None
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
        """First call: stop gracefully. Second call: stop waiting for anything (see module docstring)."""
        if self._stop.is_set():
            if not self._force.is_set():
                log.warning("Second stop request: not waiting for in-flight writes.", extra={"reason": reason})
            self._force.set()
        self.stop_reason = self.stop_reason or reason
        self._stop.set()
        if self.fanout is not None:
            self.fanout.stop()

    async def run(self) -> int:
        """Run until stopped (or, with ``once``, until drained). Returns the process exit code;
        raises :class:`CommandError` when it cannot start (the health port is taken…)."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        if self.handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_stop, sig.name)
            loop.add_signal_handler(signal.SIGUSR1, dump_tasks)
        try:
            self.health = await start_listeners(cfg, self.metrics, Probe(self._alive, self._ready), self.serve_health)
            redis = connect(cfg.analytics_storage_config)
            try:
                self.source = RedisSource(
                    redis,
                    cfg.delivery.namespace,
                    cfg.delivery.instance_id,
                    cfg.delivery.lease_seconds,
                    cfg.delivery.wait_replicas,
                    cfg.delivery.wait_replicas_timeout,
                )
                if not await self._start():
                    return self._stopped_during_start_up()
                assert self.fanout is not None
                housekeeping = self.supervise(asyncio.create_task(self._housekeeping(), name="housekeeping"))
                self.claim_loop = claim_loop = self.supervise(asyncio.create_task(self.fanout.run(), name="claim-loop"))
                if self.once:
                    await self._run_once(claim_loop)
                else:
                    await self._stop.wait()
                return await self._shutdown(claim_loop, housekeeping)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(redis.aclose(), timeout=1 if self._force.is_set() else 5)
        finally:
            if self.health is not None:
                await self.health.close()
            if self.handle_signals:
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
                    loop.remove_signal_handler(sig)

    async def _start(self) -> bool:
        """Reach Redis, register, return what a previous run left claimed, start the pumps.
        False if a stop was requested first (each Redis wait is abandoned at once then)."""
        cfg = self.config
        source = self.source
        assert source is not None
        info = await self._unless_stopped(until_ok(lambda: source.redis.info("server"), "connect", self.metrics))
        if info is None:
            return False
        log.info(
            "Connected to Redis.",
            extra={"redis": describe(cfg.analytics_storage_config), "version": info.get("redis_version", "?")},
        )
        self._build(source)
        try:
            registered = await self._unless_stopped(until_ok(source.register, "register", self.metrics))
        except RuntimeError as exc:  # another live process uses this instance id
            raise CommandError(f"{exc}.", EX_TEMPFAIL) from None
        if registered is None:
            return False
        returned = await self._unless_stopped(until_ok(lambda: source.adopt_own(self.all_keys()), "adopt", self.metrics))
        if returned is None:
            return False
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
                "pumps": ",".join(f"{n}={t}" for n, t in self._pump_types().items()),
                "claim_size": cfg.claim_size(),
                "mode": "once" if self.once else "daemon",
            },
        )
        return True

    def _pump_types(self) -> dict[str, str]:
        """Each pump and its type, for the start-up line (``sql=sql``, ``uptime=uptime``)."""
        types = {name: pump.type.strip().lower() for name, pump in self.config.pumps.items()}
        return {name: types.get(name, name) for name in self.workers}

    async def _unless_stopped(self, aw: Awaitable[T]) -> T | None:
        """``await aw``, unless a stop is requested first: then cancel it and return None."""
        task = asyncio.ensure_future(aw)
        if await wait_tasks([task], None, self._stop):
            task.cancel()
            await wait_tasks([task], CANCEL_GRACE)
            return None
        return task.result()

    def _stopped_during_start_up(self) -> int:
        cfg = self.config
        waiting_for_redis = not self.metrics.redis_ever_up
        log.info(
            f"Stopped on {self.stop_reason or 'request'} "
            + ("while waiting for Redis" if waiting_for_redis else "during start-up")
            + "; nothing was claimed.",
            extra={"redis": describe(cfg.analytics_storage_config), "error": self.metrics.redis_error or "-"},
        )
        return 0

    def all_keys(self) -> list[SourceKey]:
        keys = list(self.fanout.keys) if self.fanout else []
        for worker in self.workers.values():
            keys.extend(worker.backlogs)
        return keys

    # -- wiring ----------------------------------------------------------------------------------

    def _build(self, source: RedisSource) -> None:
        """Wire the one-way path: source → fan-out (``Intake`` + ``Fanout``) → a worker per pump →
        acknowledger → source, with the dead letters beside it."""
        cfg = self.config
        ns = cfg.delivery.namespace
        keys = [SourceKey(name, wire, ns) for name, wire in gateway_lists(cfg.analytics_storage_config.prefix)]
        uptime = build_uptime_sink(cfg)
        if uptime is not None:
            keys.append(SourceKey(UPTIME_LIST, "uptime", ns, frozenset({UPTIME_PUMP})))
        pumps = frozenset(cfg.pumps) | ({UPTIME_PUMP} if uptime is not None else set())
        self.acks = acks = Acknowledger(source, self.metrics, cfg.delivery.max_batches_in_flight, int(cfg.delivery.max_memory))
        dead_letters = DeadLetters(source, self.metrics)
        intake = Intake(source, acks, dead_letters, self.metrics, cfg.claim_size(), pumps, frozenset(cfg.pumps))
        common: dict[str, Any] = {
            "namespace": ns,
            "backlog": intake,
            "poll_interval": 0.2 if self.once else cfg.purge_delay,
            "once": self.once,
            "once_patience": self.once_patience,
        }
        for name, pump in cfg.pumps.items():
            sink = build_sink(SinkContext(name, pump, cfg, extra={"metrics": self.metrics}))
            view = build_view(pump, cfg)
            self.workers[name] = PumpWorker(
                name, sink, view, cfg.delivery_for(name), pump.timeout, self.metrics, acks, dead_letters, **common
            )
            self.metrics.init_pump(name, pump.type.strip().lower())
        if uptime is not None:
            self.workers[UPTIME_PUMP] = PumpWorker(
                UPTIME_PUMP, uptime, lambda records: records, cfg.delivery, 0, self.metrics, acks, dead_letters, **common
            )
            self.metrics.init_pump(UPTIME_PUMP, f"uptime {uptime_kind(cfg)}")
        for key in keys:
            self.metrics.init_source(key.name)
        self.fanout = Fanout(intake, keys, self.workers, acks, self.metrics, cfg.purge_delay, once=self.once)
        self.fanout.purge_log = PurgeLog(self.metrics, self.workers, [k.name for k in keys])

    # -- probes ----------------------------------------------------------------------------------

    def _alive(self) -> bool | str:
        """Liveness (module docstring): the claim loop has started and no internal task died.

        Not "Redis is up" and not "the loop claimed recently": while Redis is down the loop waits
        for it, and while a pump is slow it waits for room — restarting the process would fix
        neither, so neither makes this fail (``/ready`` and ``pump_redis_up`` report them)."""
        if self.crashed:
            return "crashed"
        if self.claim_loop is None:
            return "starting"
        return True

    def _ready(self) -> tuple[bool, dict[str, Any]]:
        if self._stop.is_set():
            return False, {"reason": "draining"}
        m = self.metrics
        if m.redis_down_since is not None or self.claim_loop is None:
            detail: dict[str, Any] = {"reason": "redis unavailable" if m.redis_down_since is not None else "starting"}
            detail["redis"] = describe(self.config.analytics_storage_config)
            if m.redis_down_since is not None:
                detail["error"] = m.redis_error[:200]
                detail["down_for_s"] = round(time.monotonic() - m.redis_down_since, 1)
            return False, detail
        threshold = self.config.telemetry.ready_failing_after
        failing = {name: w.last_error[:200] for name, w in self.workers.items() if (w.failing_for() or 0.0) > threshold}
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
                self.metrics.redis_ok()
                if time.monotonic() - last_reap >= self.config.delivery.lease_seconds / 2:
                    last_reap = time.monotonic()
                    n = await self.source.reap(self.all_keys())
                    self.metrics.records_requeued.labels("expired").inc(n)
                await refresh_gauges(self.source, self.metrics, self.fanout.keys, self.workers, self.config.delivery.namespace)
            except REDIS_TRANSIENT as exc:  # Redis down: the claim loop logs it; try again next round
                self.metrics.redis_failed(str(exc) or type(exc).__name__)
                log.debug("Housekeeping round failed.", extra={"error": str(exc)})
            except Exception as exc:
                log.debug("Housekeeping round failed.", extra={"error": str(exc)})

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
        """The stop sequence (module docstring). Every step is bounded; a second stop request
        (``_force``) cuts each wait short."""
        assert self.fanout is not None and self.source is not None and self.acks is not None
        force = self._force
        self.fanout.stop()
        self._halt.set()
        # Let the loop finish the claim it has on the wire rather than cancel it: a cancelled
        # claim may have moved a batch in Redis that this process would then only get back when
        # its lease expires. A claim waiting for Redis gives up at once (Fanout.stop).
        await finish(claim_loop, grace=30, interrupt=force)
        deadline = time.monotonic() + self.config.telemetry.shutdown_timeout
        await asyncio.gather(*(w.stop(deadline, force) for w in self.workers.values()))
        returned = await self.acks.release_all(within=2 if force.is_set() else 10)
        left = len(self.acks.batches)
        await finish(housekeeping, grace=10, interrupt=force)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.source.unregister(), timeout=1 if force.is_set() else 5)
        delivered = {n: w.delivered for n, w in self.workers.items()}
        dead = sum(w.gave_up_records for w in self.workers.values())
        failing = [n for n, w in self.workers.items() if w.failing]
        log.info(
            f"Shutdown on {self.stop_reason or 'request'}{' (forced)' if force.is_set() else ''} "
            f"◆ {self.acks.acked} batches done ◆ {sum(delivered.values())} records written "
            f"◆ {dead} dead-lettered ◆ {self.fanout.undecodable} undecodable ◆ {returned} returned to Redis"
            + (f" ◆ {left} batches left claimed (their lease returns them)" if left else ""),
            extra={"delivered": delivered, "failing": ",".join(failing) or "-"},
        )
        if self.crashed or force.is_set():
            return 1
        if self.once:
            waiting = await backlog_sizes(self.source, self.workers)
            if waiting:
                log.error(
                    "Some pumps could not deliver everything; those records wait in their Redis backlog for the next run.",
                    extra={"backlogs": waiting},
                )
                return 1
        return 0
