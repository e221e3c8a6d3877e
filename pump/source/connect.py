"""Redis clients from ``analytics_storage_config``: single node, Sentinel or Cluster, as Tyk picks
them (``master_name`` ⇒ Sentinel, ``enable_cluster`` ⇒ Cluster, else single; tyk-pump.md §1.2).

TLS verifies the server certificate unless ``ssl_insecure_skip_verify`` says otherwise. Timeouts
are in seconds, like Tyk's. Client-side retries are kept short: the pump's own loop waits out
longer outages, and every command it sends is safe to repeat.
"""

from __future__ import annotations

import ssl
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialWithJitterBackoff

from pump.config.model import StorageConfig

_TLS_VERSIONS = {"1.0": ssl.TLSVersion.TLSv1, "1.1": ssl.TLSVersion.TLSv1_1, "1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def _tls_kwargs(cfg: StorageConfig) -> dict[str, Any]:
    if not cfg.tls:
        return {}
    kw: dict[str, Any] = {"ssl": True, "ssl_cert_reqs": "none" if cfg.tls_skip_verify else "required"}
    if cfg.tls_skip_verify:
        kw["ssl_check_hostname"] = False
    if cfg.ssl_ca_file:
        kw["ssl_ca_certs"] = cfg.ssl_ca_file
    if cfg.ssl_cert_file:
        kw["ssl_certfile"] = cfg.ssl_cert_file
    if cfg.ssl_key_file:
        kw["ssl_keyfile"] = cfg.ssl_key_file
    if cfg.ssl_min_version in _TLS_VERSIONS:
        kw["ssl_min_version"] = _TLS_VERSIONS[cfg.ssl_min_version]
    return kw


def connect(cfg: StorageConfig) -> Redis | RedisCluster:
    """A client for the configured Redis; connections are opened lazily on first use."""
    common: dict[str, Any] = {
        "username": cfg.username or None,
        "password": cfg.password.get_secret_value() or None,
        "socket_timeout": max(cfg.timeout, 5.0) * 6,  # a 5000-record claim can take a while to arrive
        "socket_connect_timeout": cfg.timeout or 5.0,
        "retry": Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), 2),
        "health_check_interval": 30,
        **_tls_kwargs(cfg),
    }
    addresses = cfg.addresses()
    if cfg.master_name:
        sentinel = Sentinel(addresses, sentinel_kwargs={"password": cfg.sentinel_password.get_secret_value() or None}, **common)  # type: ignore[no-untyped-call]
        return sentinel.master_for(cfg.master_name, db=cfg.database)  # type: ignore[no-any-return]
    if cfg.enable_cluster:
        nodes = [ClusterNode(h, p) for h, p in addresses]
        return RedisCluster(startup_nodes=nodes, max_connections=cfg.optimisation_max_active or 500, **common)
    host, port = addresses[0]
    return Redis(host=host, port=port, db=cfg.database, max_connections=cfg.optimisation_max_active or 500, **common)


def describe(cfg: StorageConfig) -> str:
    """Where we connect, for logs (never with the password)."""
    kind = "sentinel" if cfg.master_name else "cluster" if cfg.enable_cluster else "redis"
    hosts = ",".join(f"{h}:{p}" for h, p in cfg.addresses())
    return f"{kind}://{hosts}/{cfg.database}{' (tls)' if cfg.tls else ''}"
