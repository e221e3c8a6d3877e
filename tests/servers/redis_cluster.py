"""Distributed Redis for scale-out and failover tests: Redis Cluster ("redis_cluster") and Sentinel ("redis_sentinel").

Both are made of Debian's ``redis-server`` (see :mod:`tests.servers.redis`), each node its own
process on 127.0.0.1 with its files in ``workdir/<node>/``; the returned :class:`Server` has the
nodes as ``members`` and stops them all.

**Cluster**: ``masters`` primaries (3 by default) and ``replicas`` replicas per primary, each with
``cluster-enabled yes`` and a private cluster-bus port, formed by ``redis-cli --cluster create …
--cluster-yes`` (slots split evenly). Ready when every node reports ``cluster_state:ok`` and knows
all the others. The URL ``redis://127.0.0.1:PORT`` names one node (cluster clients discover the
rest); ``details["nodes"]`` lists every ``host:port``.

**Sentinel**: one master, one replica and three sentinels (``redis-server --sentinel``, quorum 2,
``down-after-milliseconds`` 1000) watching master name ``mymaster``. Ready when the replica is in
sync and each sentinel knows the master, the replica and the two other sentinels. The URL is the
comma-separated sentinel addresses (``127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3``), as in
``PUMP_TEST_REDIS_SENTINEL_ADDRS``; ``details["master_name"]`` is the name to ask them for.
:func:`sentinel_failover` promotes the replica, by ``SENTINEL FAILOVER`` or by SIGKILLing the
master, and returns once every sentinel names the new master and it accepts writes;
:func:`restart_node` brings a killed node back on its port (sentinels then make an old master a
replica of the new one).
"""

from __future__ import annotations

import functools
import os
import pathlib
import signal
import time
from typing import Any

from . import (
    Server,
    ServerError,
    free_ports,
    group,
    launch,
    log_tail,
    run_checked,
    wait_ready,
)
from .redis import redis_binary, start_redis

MASTER_NAME = "mymaster"
_NODE_TIMEOUT_MS = 2000
_DOWN_AFTER_MS = 1000


def _client(host: str, port: int) -> Any:
    """A plain redis-py client without retries (a dead node must fail fast)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis(host=host, port=port, socket_timeout=2, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0), decode_responses=True)


def _ping(port: int) -> bool:
    client = _client("127.0.0.1", port)
    try:
        return bool(client.ping())
    finally:
        client.close()


def _parse_addr(text: str) -> tuple[str, int]:
    host, _, port = text.strip().rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def _stop_all(nodes: list[Server]) -> None:
    for node in reversed(nodes):
        node.stop()


def _wait(what: str, condition: Any, *, timeout: float, nodes: list[Server]) -> None:
    """Poll ``condition()`` until true; on timeout raise ServerError with the nodes' log tails."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        try:
            if condition():
                return
        except Exception as exc:  # a node still starting or electing: not yet
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            tails = "\n".join(f"--- {n.log_path}\n{log_tail(n.log_path, 15)}" for n in nodes)
            raise ServerError(f"{what} within {timeout:.0f}s (last error: {last or 'none'})\n{tails}")
        time.sleep(0.1)


# ---------------------------------------------------------------------------------------- cluster


def _cluster_ok(nodes: list[Server]) -> bool:
    for node in nodes:
        client = _client("127.0.0.1", node.port or 0)
        try:
            info = client.cluster("INFO")
        finally:
            client.close()
        if isinstance(info, str):
            info = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
        if str(info.get("cluster_state")) != "ok" or int(info.get("cluster_known_nodes", 0)) != len(nodes):
            return False
    return True


def start_redis_cluster(
    workdir: pathlib.Path,
    *,
    masters: int = 3,
    replicas: int = 0,
    timeout: float = 60.0,
    extra_args: tuple[str, ...] = (),
) -> Server:
    """Start a Redis Cluster of ``masters`` primaries with ``replicas`` replicas each (see the module docstring)."""
    if masters < 3:
        raise ValueError("redis-cli --cluster create needs at least 3 masters")
    count = masters * (1 + replicas)
    ports = free_ports(2 * count)
    data_ports, bus_ports = ports[:count], ports[count:]
    nodes: list[Server] = []
    try:
        for index, (port, bus) in enumerate(zip(data_ports, bus_ports, strict=True)):
            args = (
                "--cluster-enabled", "yes",
                "--cluster-port", str(bus),
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(_NODE_TIMEOUT_MS),
                *extra_args,
            )  # fmt: skip
            node = start_redis(workdir / f"node-{index + 1}", port=port, extra_args=args)
            node.name = f"redis_cluster node {index + 1}"
            node.details["extra_args"] = args
            nodes.append(node)
        redis_cli = str(pathlib.Path(redis_binary()).with_name("redis-cli"))
        run_checked(
            [
                redis_cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in data_ports),
                "--cluster-replicas",
                str(replicas),
                "--cluster-yes",
            ],
            what="redis-cli --cluster create",
            timeout=120,
        )
        _wait("the cluster did not reach cluster_state:ok on every node", lambda: _cluster_ok(nodes), timeout=timeout, nodes=nodes)
    except BaseException:
        _stop_all(nodes)
        raise
    addresses = [f"127.0.0.1:{p}" for p in data_ports]
    return group(
        "redis_cluster",
        nodes,
        url=f"redis://{addresses[0]}",
        workdir=workdir,
        details={"version": nodes[0].details.get("version", ""), "nodes": addresses, "masters": masters, "replicas": replicas},
    )


# --------------------------------------------------------------------------------------- sentinel


def _sentinel_conf(directory: pathlib.Path, port: int, master_port: int) -> pathlib.Path:
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "sentinel.conf"
    # Sentinel rewrites this file as it learns the topology, so each sentinel has its own copy.
    conf.write_text(
        f"""bind 127.0.0.1
port {port}
dir {directory}
logfile ""
daemonize no
sentinel resolve-hostnames no
sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2
sentinel down-after-milliseconds {MASTER_NAME} {_DOWN_AFTER_MS}
sentinel failover-timeout {MASTER_NAME} 10000
sentinel parallel-syncs {MASTER_NAME} 1
"""
    )
    return conf


def _sentinel_ports(server: Server) -> list[tuple[str, int]]:
    return [_parse_addr(a) for a in server.url.split(",") if a.strip()]


def _ask_sentinels(server: Server, fn: Any) -> list[Any]:
    """``fn(client)`` for every sentinel that answers (a stopped one is skipped)."""
    import redis

    answers = []
    for host, port in _sentinel_ports(server) or []:
        client = _client(host, port)
        try:
            answers.append(fn(client))
        except redis.ConnectionError:
            continue
        finally:
            client.close()
    return answers


def _sentinels_settled(addrs: list[tuple[str, int]], master_port: int, replica_port: int) -> bool:
    for host, port in addrs:
        client = _client(host, port)
        try:
            master = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
            if not master or int(master[1]) != master_port:
                return False
            known_replicas = client.execute_command("SENTINEL", "REPLICAS", MASTER_NAME)
            others = client.execute_command("SENTINEL", "SENTINELS", MASTER_NAME)
        finally:
            client.close()
        replica_ports = {int(_as_dict(r)["port"]) for r in known_replicas if "s_down" not in _as_dict(r).get("flags", "")}
        if replica_port not in replica_ports or len(others) != len(addrs) - 1:
            return False
    return True


def _as_dict(reply: Any) -> dict[str, str]:
    """A sentinel reply entry as a dict (redis-py gives a flat list or, with RESP3, a dict)."""
    if isinstance(reply, dict):
        return {str(k): str(v) for k, v in reply.items()}
    return {str(reply[i]): str(reply[i + 1]) for i in range(0, len(reply) - 1, 2)}


def _replica_synced(replica_port: int) -> bool:
    client = _client("127.0.0.1", replica_port)
    try:
        info = client.info("replication")
    finally:
        client.close()
    return bool(info.get("role") == "slave" and info.get("master_link_status") == "up")


def start_redis_sentinel(
    workdir: pathlib.Path,
    *,
    sentinels: int = 3,
    timeout: float = 60.0,
    extra_args: tuple[str, ...] = (),
) -> Server:
    """Start a master, a replica and ``sentinels`` sentinels (see the module docstring)."""
    if sentinels < 2:
        raise ValueError("a quorum of 2 needs at least 2 sentinels (3 are needed to survive losing one)")
    master_port, replica_port, *sentinel_ports = free_ports(2 + sentinels)
    nodes: list[Server] = []
    try:
        # No 5 s wait for more replicas before a full sync (either node may be master after a failover).
        node_args = ("--repl-diskless-sync-delay", "0", *extra_args)
        master = start_redis(workdir / "master", port=master_port, extra_args=node_args)
        master.name = "redis_sentinel master"
        master.details["extra_args"] = node_args
        nodes.append(master)
        replica_args = ("--replicaof", "127.0.0.1", str(master_port), *node_args)
        replica = start_redis(workdir / "replica", port=replica_port, extra_args=replica_args)
        replica.name = "redis_sentinel replica"
        replica.details["extra_args"] = replica_args
        nodes.append(replica)
        _wait("the replica did not sync with the master", lambda: _replica_synced(replica_port), timeout=timeout, nodes=nodes)
        binary = redis_binary()
        for index, port in enumerate(sentinel_ports):
            directory = workdir / f"sentinel-{index + 1}"
            conf = _sentinel_conf(directory, port, master_port)
            sentinel = launch(
                f"redis_sentinel sentinel {index + 1}",
                [binary, str(conf), "--sentinel"],
                url=f"redis://127.0.0.1:{port}",
                port=port,
                workdir=directory,
                log_path=directory / "sentinel.log",
            )
            nodes.append(sentinel)
            wait_ready(sentinel, functools.partial(_ping, port), timeout=timeout, interval=0.02)
        addrs = [("127.0.0.1", p) for p in sentinel_ports]
        _wait(
            "the sentinels did not discover the master, the replica and each other",
            lambda: _sentinels_settled(addrs, master_port, replica_port),
            timeout=timeout,
            nodes=nodes,
        )
    except BaseException:
        _stop_all(nodes)
        raise
    return group(
        "redis_sentinel",
        nodes,
        url=",".join(f"127.0.0.1:{p}" for p in sentinel_ports),
        workdir=workdir,
        details={
            "version": master.details.get("version", ""),
            "master_name": MASTER_NAME,
            "sentinels": [f"127.0.0.1:{p}" for p in sentinel_ports],
            "data_nodes": [f"127.0.0.1:{master_port}", f"127.0.0.1:{replica_port}"],
        },
    )


def sentinel_master(server: Server) -> tuple[str, int]:
    """The master address the first answering sentinel reports."""
    name = server.details.get("master_name", MASTER_NAME)
    for answer in _ask_sentinels(server, lambda c: c.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", name)):
        if answer:
            return str(answer[0]), int(answer[1])
    raise ServerError(f"no sentinel of {server.url} knows master {name!r}")


def _member_on_port(server: Server, port: int) -> Server | None:
    return next((m for m in server.members if m.port == port), None)


def sentinel_failover(server: Server, *, kill: bool = False, timeout: float = 60.0) -> tuple[str, int]:
    """Make the sentinels promote a replica; return the new master's ``(host, port)``.

    ``kill=False`` asks a sentinel for ``SENTINEL FAILOVER`` (a planned switch: the old master is
    demoted to a replica). ``kill=True`` SIGKILLs the master process this tooling started (a crash:
    the sentinels must agree it is down, ~1 s, and elect a leader), which an external Sentinel set
    cannot do. Returns once every answering sentinel names the new master and it accepts a write.
    """
    name = server.details.get("master_name", MASTER_NAME)
    old = sentinel_master(server)
    if kill:
        victim = _member_on_port(server, old[1])
        if victim is None or victim.pid is None:
            raise ServerError(f"the master {old[0]}:{old[1]} was not started by this tooling; use kill=False")
        os.kill(victim.pid, signal.SIGKILL)
        victim.stop()  # reaps it
    else:
        host, port = _sentinel_ports(server)[0]
        client = _client(host, port)
        try:
            client.execute_command("SENTINEL", "FAILOVER", name)
        finally:
            client.close()

    def promoted() -> bool:
        answers = _ask_sentinels(server, lambda c: c.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", name))
        addresses = {(str(a[0]), int(a[1])) for a in answers if a}
        if len(addresses) != 1 or old in addresses:
            return False
        host, port = next(iter(addresses))
        client = _client(host, port)
        try:
            role = client.info("replication").get("role")
            return role == "master" and bool(client.set("pump-test:failover-probe", "1"))
        finally:
            client.close()

    _wait(f"the sentinels did not promote a new master instead of {old[0]}:{old[1]}", promoted, timeout=timeout, nodes=server.members)
    return sentinel_master(server)


def restart_node(server: Server, port: int, *, timeout: float = 30.0) -> Server:
    """Start the (stopped or killed) Redis data node of ``server`` on ``port`` again, same files; return it."""
    old = _member_on_port(server, port)
    if old is None or old.workdir is None:
        raise ServerError(f"{server.name} has no node on port {port} started by this tooling")
    old.stop()
    node = start_redis(old.workdir, port=port, extra_args=tuple(old.details.get("extra_args", ())), timeout=timeout)
    node.name = old.name
    server.members[server.members.index(old)] = node
    return node
