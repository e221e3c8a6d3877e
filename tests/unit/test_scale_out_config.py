"""Redis Cluster and Sentinel settings: ``pump validate`` names the wrong key and the fix, and the
pump's helper keys land in their list's hash slot by Redis' own rules."""

from __future__ import annotations

from typing import Any

import pytest
from redis.crc import key_slot

from pump.config.load import validate
from pump.errors import ConfigError
from pump.source.redis_list import SourceKey, backlog_key, hash_tag

PUMPS = {"csv": {"type": "csv", "meta": {"csv_dir": "./csv"}}}


def problems(storage: dict[str, Any], **top: Any) -> tuple[list[str], list[str]]:
    """(errors, warnings) of a config with this ``analytics_storage_config``."""
    try:
        _, warnings = validate({"analytics_storage_config": storage, "pumps": PUMPS, **top})
    except ConfigError as exc:
        return [line.strip("- ").strip() for line in str(exc).splitlines() if line.strip()], []
    return [], warnings


def test_a_tyk_cluster_and_a_sentinel_config_are_valid() -> None:
    assert problems({"enable_cluster": True, "addrs": ["redis-1:6379", "redis-2:6379", "[::1]:7000"]}) == ([], [])
    sentinel = {"master_name": "mymaster", "addrs": ["s1:26379", "s2:26379"], "sentinel_password": "pw"}
    assert problems(sentinel) == ([], [])


@pytest.mark.parametrize(
    ("storage", "key", "fix"),
    [
        ({"enable_cluster": True, "addrs": ["redis-1:6379", "redis-2:99999"]}, "analytics_storage_config.addrs[1]", "1 to 65535"),
        ({"enable_cluster": True, "addrs": ["redis-1"]}, "analytics_storage_config.addrs[0]", "host:port"),
        ({"master_name": "m", "addrs": [":26379"]}, "analytics_storage_config.addrs[0]", "has no host"),
        ({"enable_cluster": True, "hosts": {"redis-1": "x"}}, "analytics_storage_config.hosts.redis-1", "1 to 65535"),
        ({"enable_cluster": True, "addrs": ["r:6379"], "database": 2}, "analytics_storage_config.database", "only database 0"),
    ],
)
def test_broken_topology_settings_name_the_key_and_the_fix(storage: dict[str, Any], key: str, fix: str) -> None:
    errors, _ = problems(storage)
    assert any(e.startswith(key + ":") and fix in e for e in errors), errors


def test_wait_replicas_is_accepted_behind_sentinel_and_on_a_cluster() -> None:
    assert problems({"enable_cluster": True, "addrs": ["r:6379"]}, delivery={"wait_replicas": 1}) == ([], [])
    assert problems({"master_name": "m", "addrs": ["s:26379"]}, delivery={"wait_replicas": 1}) == ([], [])
    errors, _ = problems({"master_name": "m", "addrs": ["s:26379"]}, delivery={"wait_replicas": 17})
    assert any(e.startswith("delivery.wait_replicas:") for e in errors), errors


def test_tyk_precedence_and_ignored_keys_are_warnings() -> None:
    _, both = problems({"enable_cluster": True, "master_name": "m", "addrs": ["s:26379"]})
    assert any(w.startswith("analytics_storage_config.enable_cluster: ignored because master_name") for w in both)
    _, stray = problems({"sentinel_password": "pw"})
    assert any(w.startswith("analytics_storage_config.sentinel_password: ignored") for w in stray)
    _, tagged = problems({"enable_cluster": True, "addrs": ["r:6379"], "key_prefix": "{tyk}analytics-"})
    assert any(w.startswith("analytics_storage_config.key_prefix:") and "one hash slot" in w for w in tagged)
    _, no_addrs = problems({"master_name": "m"})
    assert any(w.startswith("analytics_storage_config.addrs: empty") for w in no_addrs)


@pytest.mark.parametrize(
    "name",
    [
        "analytics-tyk-system-analytics",  # what the gateway writes: no braces
        "analytics-tyk-system-analytics_7_protobuf",
        "{tyk}analytics-tyk-system-analytics",  # a tag of its own: hashed by "tyk"
        "a{}b{c}",  # empty first tag: Redis hashes the whole key, not "c"
        "odd}name",  # a brace that wrapping would turn into a tag
        "x{unclosed",
        "{}{z}",
    ],
)
def test_every_helper_key_is_in_its_lists_slot(name: str) -> None:
    key = SourceKey(name, "msgpack", "pump")
    slot = key_slot(name.encode())
    helpers = [key.leases, key.marks, key.batches, key.proc("t0k3n"), key.done("b47c4"), f"{hash_tag(name)}:pump:g:x"]
    assert {key_slot(h.encode()) for h in helpers} == {slot}, helpers


def test_helper_keys_of_different_lists_never_collide() -> None:
    """Odd names that share a slot get the same substitute tag; the name keeps their keys apart."""
    a = "odd}name"
    b = next(f"x}}{i}" for i in range(200_000) if key_slot(f"x}}{i}".encode()) == key_slot(a.encode()))
    assert SourceKey(a, "msgpack", "pump").leases != SourceKey(b, "msgpack", "pump").leases


def test_a_backlog_and_its_helpers_share_a_slot() -> None:
    backlog = backlog_key("pump", "csv")
    assert {key_slot(k.encode()) for k in (backlog.name, backlog.marks, backlog.leases)} == {key_slot(backlog.name.encode())}
