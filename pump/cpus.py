"""How many CPUs this process may really use: the default number of ``pump run`` workers.

``os.cpu_count()`` is the host's count; a container is limited twice over, by its cpuset (the
CPUs it may run on: ``sched_getaffinity``) and by its CPU quota (``docker run --cpus 1.5``,
a Kubernetes CPU limit: cgroup v2 ``cpu.max``, cgroup v1 ``cpu.cfs_quota_us``). A worker per
host CPU in a container limited to 2 would only add start-up cost, memory and throttling, so the
usable count is the smaller of the two, the quota rounded down, at least 1.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def affinity_cpus() -> int:
    """The CPUs this process may run on (a container's cpuset), not the machine's."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _v2_quota(line: str) -> float | None:
    """``cpu.max`` is ``"<quota> <period>"`` in microseconds, or ``"max <period>"``: no limit."""
    parts = line.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def cgroup_quota(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> float | None:
    """CPUs' worth of time the cgroup quota grants this process (e.g. 1.5), None if unlimited.

    cgroup v2: the ``cpu.max`` of this process's cgroup and of every ancestor up to the root (a
    parent's limit binds its children too: the smallest wins). cgroup v1: the ``cpu`` hierarchy's
    ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (-1 = unlimited).
    """
    quotas: list[float] = []
    v2_path, v1_path = None, None
    for line in (_read(proc_cgroup) or "").splitlines():
        ident, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if ident == "0" and controllers == "":
            v2_path = path
        elif "cpu" in controllers.split(","):
            v1_path = path
    if v2_path is not None:
        node = root / v2_path.lstrip("/")
        while True:
            text = _read(node / "cpu.max")
            quota = _v2_quota(text) if text else None
            if quota is not None:
                quotas.append(quota)
            if node == root or root not in node.parents:
                break
            node = node.parent
    for base in [root / "cpu" / v1_path.lstrip("/"), root / "cpu"] if v1_path is not None else []:
        quota_text, period_text = _read(base / "cpu.cfs_quota_us"), _read(base / "cpu.cfs_period_us")
        if quota_text and period_text:
            quota = _v2_quota(f"{quota_text} {period_text}") if not quota_text.startswith("-") else None
            if quota is not None:
                quotas.append(quota)
            break
    return min(quotas) if quotas else None


def usable_cpus(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> int:
    """The smaller of the cpuset and the quota (rounded down), at least 1."""
    cpus = affinity_cpus()
    quota = cgroup_quota(root, proc_cgroup)
    if quota is not None:
        cpus = min(cpus, math.floor(quota))
    return max(1, cpus)
