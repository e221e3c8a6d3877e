"""Command line: ``pump run | validate | demo | deadletter`` and ``pump --version``.

Exit codes (the same table is in the README); the non-zero ones other than 1 follow BSD's
sysexits.h, so scripts can tell the cases apart:

====  ==========================================================================================
 0    success; also ``pump run`` stopped by SIGTERM/SIGINT, in any state (before Redis was
      ever reached too)
 1    runtime failure: ``run --once`` left records in a pump's backlog, an internal error, a
      stop forced by a second signal, a ``validate --check`` check that failed
 2    usage: bad arguments, ``deadletter --pump`` naming no configured pump
 69   EX_UNAVAILABLE: a server the command needs is unreachable (Redis for ``demo`` and
      ``deadletter``; ``pump run`` waits for Redis instead)
 74   EX_IOERR: the output was closed before everything was printed (``pump demo | head -1``);
      nothing more is printed
 75   EX_TEMPFAIL: something another process holds — the health or metrics port, the instance
      id; try again once it is free, or configure another
 78   EX_CONFIG: invalid configuration (as ``vector validate``); also a listener address that
      cannot be used
====  ==========================================================================================

Failures are one line naming what failed and what to do, never a traceback: ``pump run`` logs
it (so ``log_format: json`` stays JSON), the other commands print ``pump COMMAND: …`` on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from pump import __version__
from pump.config.load import load
from pump.config.model import Config
from pump.errors import EX_CONFIG, EX_IOERR, EX_UNAVAILABLE, EX_USAGE, CommandError, ConfigError
from pump.redact import scrub
from pump.telemetry import logging as pump_logging

#: Default seconds each ``validate --check`` check may take.
CHECK_TIMEOUT = 5.0
DEFAULT_CONFIG = os.environ.get("PUMP_CONFIG", "/etc/pump/pump.yaml")
log = logging.getLogger("pump")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pump", description="Drain Tyk API analytics from Redis into many sinks, losing nothing.")
    p.add_argument("--version", action="version", version=f"pump {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def with_config(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "-c",
            "--config",
            "--conf",
            default=DEFAULT_CONFIG,
            help=f"pump file, YAML or Tyk JSON (default {DEFAULT_CONFIG}, or $PUMP_CONFIG)",
        )

    run = sub.add_parser("run", help="run the pump")
    with_config(run)
    run.add_argument("--once", action="store_true", help="drain what is in Redis now, deliver it, exit")
    run.add_argument(
        "--workers",
        type=_workers,
        default=None,
        metavar="N",
        help="claiming processes under one supervisor (one health port, one shutdown); 'auto' = the CPUs usable "
        "(default: the pump file's workers, or $TYK_PMP_WORKERS, else auto)",
    )

    val = sub.add_parser("validate", help="check a pump file and exit (0 valid, 78 invalid)")
    with_config(val)
    val.add_argument("--check", action="store_true", help="also connect to Redis and every sink, all at once")
    val.add_argument(
        "--timeout",
        type=_positive,
        default=CHECK_TIMEOUT,
        metavar="SECONDS",
        help=f"how long each --check may take (default {CHECK_TIMEOUT:g})",
    )

    demo = sub.add_parser("demo", help="push realistic Tyk gateway traffic into the configured Redis")
    with_config(demo)
    demo.add_argument("--records", type=int, default=10000, help="how many records (default 10000)")
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument("--hours", type=float, default=24, help="spread timestamps over the last N hours (default 24)")
    demo.add_argument("--protobuf-share", type=float, default=0.1, help="share of records sent as protobuf (default 0.1)")

    top = sub.add_parser("top", help="live view of a running pump, from its /metrics endpoint")
    with_config(top)
    top.add_argument("--url", help="the pump's /metrics URL (default: from the config's health listener or telemetry.metrics_address)")
    top.add_argument("--interval", type=_positive, default=2.0, metavar="SECONDS", help="refresh every N seconds (default 2)")
    top.add_argument("--once", action="store_true", help="print one screen (two scrapes one interval apart) and exit")

    dl = sub.add_parser("deadletter", help="inspect, replay or purge dead-lettered records")
    dl.add_argument("action", choices=["list", "replay", "purge"])
    with_config(dl)
    dl.add_argument("--pump", help="a pump name, or 'undecodable' (default: every list)")
    dl.add_argument("--limit", type=int, default=20, help="entries shown by list (default 20)")
    return p


def _workers(text: str) -> int | str:
    if text.strip().lower() == "auto":
        return "auto"  # resolved once the config is read (resolve_workers)
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of processes (1–256) or 'auto'") from None
    if not 1 <= value <= 256:
        raise argparse.ArgumentTypeError(f"{value}: give a number of processes from 1 to 256, or 'auto'")
    return value


#: Pump types that serve a listener of their own (one address, one in-memory store): several
#: workers would compete for the address and split the store, so ``auto`` runs one process.
ONE_PROCESS_TYPES = frozenset({"prometheus"})


def resolve_workers(setting: int | str, config: Config | None = None) -> int:
    """A ``workers`` setting as a count: ``auto`` = the CPUs this process may use, or 1 if a pump
    must run in one process (:data:`ONE_PROCESS_TYPES`)."""
    if setting != "auto":
        return int(setting)
    if config is not None and any(p.type.strip().lower() in ONE_PROCESS_TYPES for p in config.pumps.values()):
        return 1
    from pump.cpus import usable_cpus

    return usable_cpus()


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < 3600:
        raise argparse.ArgumentTypeError(f"must be between 0 and 3600 seconds, got {text}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # The reader went away (``| head``): not an error worth a word. Point stdout at
        # /dev/null so the interpreter's final flush does not complain either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EX_IOERR
    except KeyboardInterrupt:
        return 130


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return EX_USAGE
    if args.command == "top" and args.url:
        return _top(args.url, args)  # a remote pump (port-forward): no local config needed
    try:
        config, warnings = load(args.config)
    except ConfigError as exc:
        print(f"{args.config}: invalid configuration", file=sys.stderr)
        for line in exc.errors:
            print(f"  {line}", file=sys.stderr)
        return EX_CONFIG
    pump_logging.setup(config.log_level, "json" if config.log_format == "json" else "text")
    try:
        if args.command == "validate":
            return _validate(args, config, warnings)
        for w in warnings:
            log.warning(w)
        if args.command == "run":
            from pump.app import serve

            workers = resolve_workers(config.workers if args.workers is None else args.workers, config)
            if workers > 1:
                from pump.supervisor import run_workers

                return run_workers(config, workers, args.once)
            return serve(config, once=args.once)
        if args.command == "demo":
            return _with_redis(config, args, _demo(config, args))
        if args.command == "top":
            return _top(metrics_url(config), args)
        return _with_redis(config, args, _deadletter(config, args))
    except CommandError as exc:
        if args.command == "run":
            log.error(str(exc))
        else:
            print(f"pump {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code


def metrics_url(config: Config) -> str:
    """Where a pump run with ``config`` serves /metrics, as seen from this host."""
    tel = config.telemetry
    if tel.metrics_address:
        host, _, port = tel.metrics_address.rpartition(":")
    else:
        host, port = tel.health_bind, str(config.health_check_endpoint_port or 8083)
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}/metrics"


def _top(url: str, args: argparse.Namespace) -> int:
    from pump import top

    try:
        return top.run(url, interval=args.interval, once=args.once)
    except top.ScrapeError as exc:
        print(f"pump top: {exc}; is the pump running, and is its health listener enabled?", file=sys.stderr)
        return EX_UNAVAILABLE


def _with_redis(config: Config, args: argparse.Namespace, command: Coroutine[Any, Any, int]) -> int:
    """Run a command that needs Redis; Redis unreachable is one line and exit 69, not a traceback."""
    from redis.exceptions import RedisError

    from pump.delivery.ack import REDIS_TRANSIENT
    from pump.source.connect import describe

    where = describe(config.analytics_storage_config)
    try:
        return asyncio.run(command)
    except BrokenPipeError:
        raise
    except REDIS_TRANSIENT as exc:
        raise CommandError(
            f"cannot reach Redis at {where}: {one_line(exc).rstrip('.')}; start it, or fix analytics_storage_config in {args.config}",
            EX_UNAVAILABLE,
        ) from None
    except RedisError as exc:
        raise CommandError(f"Redis at {where} refused the command: {one_line(exc)}", EX_UNAVAILABLE) from None


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception as one short line (drivers' messages can span many), without secrets."""
    text = scrub(" ".join((str(exc) or type(exc).__name__).split()))
    return text if len(text) <= limit else text[:limit] + "…"


def _validate(args: argparse.Namespace, config: Config, warnings: list[str]) -> int:
    pumps = ", ".join(f"{name} ({p.type})" for name, p in config.pumps.items())
    print(f"{args.config}: valid — {len(config.pumps)} pump(s): {pumps}")
    for w in warnings:
        print(f"  warning: {w}")
    if args.check:
        return asyncio.run(_check(config, args.timeout))
    return 0


async def _check(config: Config, seconds: float) -> int:
    """Connect to Redis and to every sink (the uptime one too), all at the same time, each for at
    most ``seconds``; one line per check. 1 if any failed."""
    from pump.sinks import build
    from pump.sinks.base import Sink, SinkContext
    from pump.source.connect import connect, describe
    from pump.uptime import build_uptime_sink, uptime_kind

    async def redis_ping() -> None:
        redis = connect(config.analytics_storage_config)
        try:
            await redis.ping()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(redis.aclose(), timeout=2)

    def sink_check(make: Callable[[], Sink | None]) -> Callable[[], Awaitable[None]]:
        async def check() -> None:
            sink = make()
            if sink is None:
                return
            try:
                await sink.check()
            finally:
                with contextlib.suppress(Exception):  # the check's own error is the one to report
                    await asyncio.wait_for(sink.close(), timeout=2)

        return check

    # Drivers get half the budget (pymongo overshoots its own by up to a heartbeat), so they report
    # their own reason ("connection refused") before the budget runs out and all that is left to
    # say is "no answer".
    driver_wait = max(0.2, seconds / 2)
    checks: list[tuple[str, str, Callable[[], Awaitable[None]]]] = [
        (f"redis {describe(config.analytics_storage_config)}", "that Redis is running and analytics_storage_config", redis_ping)
    ]
    for name, pump in config.pumps.items():
        bounded = pump.model_copy(update={"timeout": min(pump.timeout or driver_wait, driver_wait)})
        make = functools.partial(build, SinkContext(name, bounded, config))
        checks.append((f"pump {name} ({pump.type})", f"the server and pumps.{name}.meta", sink_check(make)))
    kind = uptime_kind(config)
    if kind is not None:
        checks.append((f"uptime ({kind})", "the server and uptime_pump_config", sink_check(lambda: build_uptime_sink(config))))

    async def run(check: Callable[[], Awaitable[None]]) -> str:
        try:
            async with asyncio.timeout(seconds):
                await check()
        except TimeoutError:
            return f"no answer within {seconds:g} s"
        except Exception as exc:
            return one_line(exc)
        return ""

    results = await asyncio.gather(*(run(check) for _, _, check in checks))
    for (label, hint, _), error in zip(checks, results, strict=True):
        print(f"  FAILED: {label}: {error.rstrip('.')} — check {hint}" if error else f"  ok: {label}")
    return 1 if any(results) else 0


async def _demo(config: Config, args: argparse.Namespace) -> int:
    import random
    import time

    from pump.demo import Traffic, payloads
    from pump.source.connect import connect, describe
    from pump.source.redis_list import gateway_lists

    redis = connect(config.analytics_storage_config)
    lists = gateway_lists(config.analytics_storage_config.prefix)
    msgpack_keys = [k for k, wire in lists if wire == "msgpack"]
    protobuf_keys = [k for k, wire in lists if wire == "protobuf"]
    traffic = Traffic(seed=args.seed, start=time.time() - args.hours * 3600, span_seconds=args.hours * 3600)
    rng = random.Random(args.seed)
    counts: Counter[str] = Counter()
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for i, (wire, payload) in enumerate(payloads(traffic.stream(args.records), args.protobuf_share, rng), 1):
                key = rng.choice(protobuf_keys if wire == "protobuf" else msgpack_keys[:4])
                pipe.rpush(key, payload)
                counts[key] += 1
                if i % 2000 == 0:
                    await pipe.execute()
            await pipe.execute()
    finally:
        await redis.aclose()
    print(f"Pushed {args.records} Tyk records to {describe(config.analytics_storage_config)}:")
    for key, n in sorted(counts.items()):
        print(f"  {n:>7}  {key}")
    return 0


async def _deadletter(config: Config, args: argparse.Namespace) -> int:
    from pump.delivery.deadletter import run_deadletter

    return await run_deadletter(config, args.action, args.pump, args.limit)


if __name__ == "__main__":
    raise SystemExit(main())
