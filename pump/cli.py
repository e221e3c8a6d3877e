"""Command line: ``pump run | validate | demo | deadletter`` and ``pump --version``.

Exit codes: 0 success; 1 runtime failure (``run --once`` that could not deliver everything);
78 invalid configuration (EX_CONFIG, as ``vector validate``); 2 bad command-line usage.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections import Counter
from collections.abc import Sequence

from pump import __version__
from pump.config.load import load
from pump.config.model import Config
from pump.errors import CommandError, ConfigError
from pump.telemetry import logging as pump_logging

EX_CONFIG = 78
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

    val = sub.add_parser("validate", help="check a pump file and exit (0 valid, 78 invalid)")
    with_config(val)
    val.add_argument("--check", action="store_true", help="also connect to Redis and every sink")

    demo = sub.add_parser("demo", help="push realistic Tyk gateway traffic into the configured Redis")
    with_config(demo)
    demo.add_argument("--records", type=int, default=10000, help="how many records (default 10000)")
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument("--hours", type=float, default=24, help="spread timestamps over the last N hours (default 24)")
    demo.add_argument("--protobuf-share", type=float, default=0.1, help="share of records sent as protobuf (default 0.1)")

    dl = sub.add_parser("deadletter", help="inspect, replay or purge dead-lettered records")
    dl.add_argument("action", choices=["list", "replay", "purge"])
    with_config(dl)
    dl.add_argument("--pump", help="a pump name, or 'undecodable' (default: every list)")
    dl.add_argument("--limit", type=int, default=20, help="entries shown by list (default 20)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 2
    try:
        config, warnings = load(args.config)
    except ConfigError as exc:
        print(f"{args.config}: invalid configuration", file=sys.stderr)
        for line in exc.errors:
            print(f"  {line}", file=sys.stderr)
        return EX_CONFIG
    pump_logging.setup(config.log_level, "json" if config.log_format == "json" else "text")
    if args.command == "validate":
        return _validate(args, config, warnings)
    for w in warnings:
        log.warning(w)
    if args.command == "run":
        from pump.app import serve

        try:
            return serve(config, once=args.once)
        except CommandError as exc:  # one line, no traceback (the health port is taken…)
            log.error(str(exc))
            return exc.exit_code
    if args.command == "demo":
        return asyncio.run(_demo(config, args))
    return asyncio.run(_deadletter(config, args))


def _validate(args: argparse.Namespace, config: Config, warnings: list[str]) -> int:
    pumps = ", ".join(f"{name} ({p.type})" for name, p in config.pumps.items())
    print(f"{args.config}: valid — {len(config.pumps)} pump(s): {pumps}")
    for w in warnings:
        print(f"  warning: {w}")
    if args.check:
        return asyncio.run(_check(config))
    return 0


async def _check(config: Config) -> int:
    from pump.sinks import build
    from pump.sinks.base import SinkContext
    from pump.source.connect import connect, describe

    failed = 0
    redis = connect(config.analytics_storage_config)
    try:
        await redis.ping()
        print(f"  ok: redis {describe(config.analytics_storage_config)}")
    except Exception as exc:
        failed += 1
        print(f"  FAILED: redis {describe(config.analytics_storage_config)}: {exc}")
    finally:
        await redis.aclose()
    for name, pump in config.pumps.items():
        sink = build(SinkContext(name, pump, config))
        try:
            await sink.check()
            print(f"  ok: pump {name} ({pump.type})")
        except Exception as exc:
            failed += 1
            print(f"  FAILED: pump {name} ({pump.type}): {exc}")
        finally:
            await sink.close()
    return 1 if failed else 0


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
    pipe = redis.pipeline(transaction=False)
    try:
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
