"""``scripts/bench`` rows of scale-out: ``cluster-N`` runs N ``pump run --once`` processes at
once (instance ids ``bench-1`` … ``bench-N``), each with the ``dummy`` pump, against a 3-master
Redis Cluster from tests/servers (or ``PUMP_TEST_REDIS_CLUSTER_URL``). The records are spread
over the 11 msgpack lists a gateway with ``enable_multiple_analytics_keys`` writes, so every
master holds some. The time is from the first start to the last exit; the RSS is the largest
peak of one process; the pumps' CPU seconds per 100k records (all instances) go to stderr.
Any ``cluster-<N>`` row name works (``cluster-4``, …).

The pump processes share the machine's cores with the three Redis masters: on 2 cores, more
than two instances can only show what contention costs.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LISTS = ["analytics-tyk-system-analytics", *(f"analytics-tyk-system-analytics_{i}" for i in range(10))]

Start = Callable[[str], str]


def _push(url: str, payloads: list[bytes]) -> None:
    from redis.cluster import RedisCluster

    rc = RedisCluster.from_url(url)
    try:
        rc.flushall(target_nodes=RedisCluster.PRIMARIES)
        for i, name in enumerate(LISTS):
            part = payloads[i :: len(LISTS)]
            for start in range(0, len(part), 5000):
                rc.rpush(name, *part[start : start + 5000])
    finally:
        rc.close()


def _peak(pid: int, stop: threading.Event, out: list[int]) -> None:
    while not stop.is_set():
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        out[0] = max(out[0], int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError):
            return
        stop.wait(0.02)


def cluster(instances: int, payloads: list[bytes], workdir: Path, start_server: Start) -> tuple[float, int, float, float]:
    """(records/s, peak RSS KiB of the largest process, seconds, CPU s of all) of ``instances`` pumps."""
    url = start_server("redis_cluster")
    _push(url, payloads)
    addr = url.split("://", 1)[-1].split("/", 1)[0]
    procs = []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    for i in range(1, instances + 1):
        config = workdir / f"cluster-{instances}-{i}.json"
        doc = {
            "analytics_storage_config": {"enable_cluster": True, "addrs": [addr]},
            "purge_delay": 1,
            "workers": 1,  # an instance is one process here: instances, not workers, are the variable
            "telemetry": {"health_enabled": False},
            "log_level": "warn",
            "delivery": {"instance_id": f"bench-{i}"},
            "pumps": {"dummy": {"type": "dummy"}},
        }
        config.write_text(json.dumps(doc))
        cmd = [sys.executable, "-m", "pump", "run", "--once", "--config", str(config)]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE))
    peaks = [[0] for _ in procs]
    stop = threading.Event()
    watchers = [threading.Thread(target=_peak, args=(p.pid, stop, peak), daemon=True) for p, peak in zip(procs, peaks, strict=True)]
    for w in watchers:
        w.start()
    errors = [p.communicate()[1].decode(errors="replace") for p in procs]
    elapsed = time.perf_counter() - started
    stop.set()
    for w in watchers:
        w.join()
    for p, err in zip(procs, errors, strict=True):
        if p.returncode != 0:
            raise SystemExit(f"pump exited {p.returncode}:\n{err[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"cluster-{instances}: pump CPU {cpu * 100_000 / len(payloads):.2f} s per 100k records (all instances)", file=sys.stderr)
    return len(payloads) / elapsed, max(peak[0] for peak in peaks), elapsed, cpu


def run(row: str, payloads: list[bytes], workdir: Path, start_server: Start) -> tuple[float, int, float, float] | None:
    """The figures of ``row`` if it is one of this module's, else None."""
    name, _, count = row.partition("-")
    if name == "cluster" and count.isdigit() and int(count) >= 1:
        return cluster(int(count), payloads, workdir, start_server)
    return None
