"""``workers: auto`` (pump/cpus.py): the cpuset and the cgroup CPU quota, read from a fake
``/sys/fs/cgroup`` and ``/proc/self/cgroup`` laid out as the kernel does."""

from __future__ import annotations

from pathlib import Path

import pytest

from pump import cpus


def layout(tmp_path: Path, proc: str, files: dict[str, str]) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text + "\n")
    root.mkdir(parents=True, exist_ok=True)
    (tmp_path / "self-cgroup").write_text(proc)
    return root, tmp_path / "self-cgroup"


def test_cgroup_v2_quota_is_the_smallest_of_the_process_cgroup_and_its_ancestors(tmp_path: Path) -> None:
    root, proc = layout(
        tmp_path,
        "0::/kubepods/pod1/ctr\n",
        {"kubepods/cpu.max": "250000 100000", "kubepods/pod1/cpu.max": "150000 100000", "kubepods/pod1/ctr/cpu.max": "max 100000"},
    )
    assert cpus.cgroup_quota(root, proc) == 1.5


def test_cgroup_v2_in_its_own_namespace_and_without_limit(tmp_path: Path) -> None:
    root, proc = layout(tmp_path, "0::/\n", {"cpu.max": "50000 100000"})
    assert cpus.cgroup_quota(root, proc) == 0.5
    root, proc = layout(tmp_path / "b", "0::/\n", {"cpu.max": "max 100000"})
    assert cpus.cgroup_quota(root, proc) is None
    root, proc = layout(tmp_path / "c", "0::/\n", {})
    assert cpus.cgroup_quota(root, proc) is None


def test_cgroup_v1_cfs_quota(tmp_path: Path) -> None:
    files = {"cpu/docker/abc/cpu.cfs_quota_us": "300000", "cpu/docker/abc/cpu.cfs_period_us": "100000"}
    root, proc = layout(tmp_path, "4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n0::/\n", files)
    assert cpus.cgroup_quota(root, proc) == 3.0
    files = {"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}  # unlimited; path not mounted
    root, proc = layout(tmp_path / "b", "2:cpu,cpuacct:/docker/abc\n", files)
    assert cpus.cgroup_quota(root, proc) is None


@pytest.mark.parametrize(
    ("affinity", "quota", "expected"),
    [(8, "150000 100000", 1), (8, "250000 100000", 2), (2, "max 100000", 2), (4, "10000 100000", 1), (2, "800000 100000", 2)],
)
def test_usable_cpus_is_the_smaller_rounded_down_and_at_least_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, affinity: int, quota: str, expected: int
) -> None:
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: set(range(affinity)))
    root, proc = layout(tmp_path, "0::/\n", {"cpu.max": quota})
    assert cpus.usable_cpus(root, proc) == expected


def test_auto_is_the_usable_cpus_unless_a_pump_serves_a_listener_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    from pump.cli import resolve_workers
    from pump.config.model import Config

    monkeypatch.setattr(cpus, "usable_cpus", lambda: 6)
    csv = Config.model_validate({"pumps": {"csv": {"type": "csv"}}})
    prom = Config.model_validate({"pumps": {"csv": {"type": "csv"}, "p": {"type": "Prometheus"}}})
    assert resolve_workers("auto", csv) == 6
    assert resolve_workers("auto", prom) == 1  # one listen_address, one in-memory store
    assert resolve_workers(3, prom) == 3  # asked for explicitly
