"""Checks of ``analytics_storage_config`` for Redis Cluster and Sentinel that one field's type
cannot express: what combinations mean, and addresses that would only fail at connect time.

Tyk accepts all of these silently and fails (or picks one mode) at run time; ``pump validate``
says which key is wrong and how to fix it. Combinations Tyk resolves by a rule (``master_name``
wins over ``enable_cluster``) stay valid, with a warning, so a Tyk pump.conf loads unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pump.config.model import Config

_KEY = "analytics_storage_config"


def check_storage(config: Config) -> tuple[list[str], list[str]]:
    """(errors, warnings) about the Redis topology settings."""
    cfg = config.analytics_storage_config
    errors: list[str] = []
    warnings: list[str] = []
    for index, item in enumerate(cfg.addrs):
        problem = _address_problem(item)
        if problem:
            errors.append(f"{_KEY}.addrs[{index}]: {item!r} {problem}")
    for host, port in (cfg.hosts or {}).items():
        problem = _address_problem(f"{host}:{port}")
        if problem:
            errors.append(f"{_KEY}.hosts.{host}: {host}:{port} {problem}")
    sentinel, cluster = bool(cfg.master_name), cfg.enable_cluster
    if sentinel and cluster:
        warnings.append(f"{_KEY}.enable_cluster: ignored because master_name is set (Sentinel wins, as in Tyk); remove one of the two")
    if cluster and not sentinel:
        if cfg.database != 0:
            errors.append(f"{_KEY}.database: Redis Cluster has only database 0; set database: 0 (or enable_cluster: false)")
        if "{" in cfg.prefix and "}" in cfg.prefix.split("{", 1)[1]:
            warnings.append(
                f"{_KEY}.key_prefix: {cfg.prefix!r} holds a hash tag, so every analytics list is in one hash "
                "slot and one cluster master does all the work; drop the braces to spread the lists"
            )
    if not sentinel and cfg.sentinel_password.get_secret_value():
        warnings.append(f"{_KEY}.sentinel_password: ignored without master_name (it is the Sentinels' password)")
    if sentinel and not cfg.addrs and not cfg.hosts:
        warnings.append(
            f"{_KEY}.addrs: empty, so the Sentinel is asked at {cfg.host}:{cfg.port or 6379}; with master_name, list the "
            "Sentinels' addresses (usually port 26379) in addrs"
        )
    return errors, warnings


def _address_problem(item: str) -> str:
    """Why ``host:port`` cannot be used, or "" (IPv6 hosts may be bracketed: ``[::1]:6379``)."""
    host, sep, port = item.strip().rpartition(":")
    if not sep:
        return "has no port; write host:port, e.g. redis-1:6379"
    if not host.strip("[]"):
        return "has no host; write host:port, e.g. redis-1:6379"
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        return f"has port {port!r}; expected a number from 1 to 65535, e.g. redis-1:6379"
    return ""


__all__ = ["check_storage"]
