"""The Redis-side gauges the daemon refreshes on every housekeeping round, and the per-pump backlog
sizes ``pump run --once`` exits on. They read list lengths in one round trip; nothing else."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pump.delivery.deadletter import UNDECODABLE, deadletter_key
from pump.delivery.worker import PumpWorker
from pump.source.redis_list import RedisSource, SourceKey
from pump.telemetry.metrics import Metrics


async def refresh_gauges(
    source: RedisSource, metrics: Metrics, gateway_keys: Sequence[SourceKey], workers: Mapping[str, PumpWorker], namespace: str
) -> None:
    """Gateway list, backlog and dead-letter lengths, the oldest unacknowledged batch, batches in flight."""
    gateway = [k.name for k in gateway_keys]
    backlogs = [(name, k.name) for name, w in workers.items() for k in w.backlogs]
    dlqs = [(name, deadletter_key(namespace, name)) for name in [*workers, UNDECODABLE]]
    lengths = await source.lengths(gateway + [k for _, k in backlogs] + [k for _, k in dlqs])
    for name, n in zip(gateway, lengths, strict=False):
        metrics.source_backlog.labels(name).set(n)
    per_pump: dict[str, int] = {}
    for (pump, _), n in zip(backlogs, lengths[len(gateway) :], strict=False):
        per_pump[pump] = per_pump.get(pump, 0) + n
    for pump, n in per_pump.items():
        metrics.backlog_records.labels(pump).set(n)
    for (pump, _), n in zip(dlqs, lengths[len(gateway) + len(backlogs) :], strict=False):
        metrics.deadletter_records.labels(pump).set(n)
    metrics.oldest_unacked.set(source.oldest_age())
    metrics.batches_in_flight.set(len(source.inflight))


async def backlog_sizes(source: RedisSource, workers: Mapping[str, PumpWorker]) -> dict[str, int]:
    """Records parked per pump, for the ``--once`` exit code (0 when all was delivered)."""
    names = [(pump, key.name) for pump, w in workers.items() for key in w.backlogs]
    try:
        lengths = await source.lengths([k for _, k in names])
    except Exception:
        return {"unknown (Redis unavailable)": 1}
    out: dict[str, int] = {}
    for (pump, _), n in zip(names, lengths, strict=True):
        if n:
            out[pump] = out.get(pump, 0) + n
    return out
