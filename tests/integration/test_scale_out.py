"""Scale-out on real distributed Redis: N pump processes (each its own ``instance_id``) draining
the same lists on a 3-master Redis Cluster, one of them SIGKILLed mid-drain, and a Sentinel
failover (its master SIGKILLed) during a drain.

The sinks are the idempotent ones: ``sql`` on PostgreSQL (the record id is the primary key) and
``sql_aggregate`` (its ledger of applied batch ids); a CSV pump per instance counts what each
process delivered, so a batch handed to two live instances would show up. Counts, never timings
(throughput is ``scripts/bench --sinks cluster-1,cluster-2,cluster-3``).

What Redis itself can lose on a Sentinel failover, and so what the failover test asserts:
replication is asynchronous, so writes the dead master had acknowledged but not yet sent to the
replica are gone — a gateway's RPUSHes (those records never reach any pump) and the pump's own
claims, acknowledgements and progress marks. The test makes the replica acknowledge every
record (``WAIT``) before the drain starts, so every record exists on the replica that Sentinel
promotes; it then asserts that each of them is in PostgreSQL exactly once and counted exactly
once by the aggregate. A lost acknowledgement brings a batch back under its own id (skipped by the
ledger); a lost claim cannot happen to a batch a sink has seen, because each claim waits for the
replica (``delivery.wait_replicas``, 1 by default with Sentinel).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from redis.cluster import RedisCluster

from tests import servers
from tests.helpers import BASE_LIST, ROOT, msgpack_payloads, numbered, pump_cmd
from tests.integration import sql_helpers
from tests.integration.test_pipeline import csv_rows
from tests.servers.redis_cluster import sentinel_failover, sentinel_master

pytestmark = pytest.mark.integration

pg_dsn = sql_helpers.pg_dsn  # fixture

#: the gateway's msgpack lists with ``enable_multiple_analytics_keys``: spread over every master
LISTS = [BASE_LIST, *(f"{BASE_LIST}_{i}" for i in range(10))]


# ------------------------------------------------------------------------------------- helpers


def _addr(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]


def cluster_storage(server: servers.Server) -> dict[str, Any]:
    return {"enable_cluster": True, "addrs": list(server.details.get("nodes") or [_addr(server.url)])}


def sentinel_storage(server: servers.Server) -> dict[str, Any]:
    return {"master_name": server.details.get("master_name", "mymaster"), "addrs": [a.strip() for a in server.url.split(",")]}


def spread(payloads: list[bytes]) -> dict[str, list[bytes]]:
    return {name: payloads[i :: len(LISTS)] for i, name in enumerate(LISTS)}


def push_pipelined(r: Any, payloads: list[bytes]) -> None:
    for name, part in spread(payloads).items():
        pipe = r.pipeline(transaction=False)
        for start in range(0, len(part), 2000):
            pipe.rpush(name, *part[start : start + 2000])
        pipe.execute()


class Fleet:
    """N ``pump run`` daemons on one config, each with its own instance id and CSV directory."""

    def __init__(self, tmp_path: Path, storage: dict[str, Any], dsn: str, **delivery: Any) -> None:
        self.tmp_path = tmp_path
        self.storage = storage
        self.dsn = dsn
        self.delivery = delivery
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    def log(self, i: int) -> Path:
        return self.tmp_path / f"pump-{i}.log"

    def csv_dir(self, i: int) -> Path:
        return self.tmp_path / f"csv-{i}"

    def start(self, n: int) -> None:
        for i in range(n):
            pumps = {
                "sql": {"type": "sql", "meta": {"type": "postgres", "connection_string": self.dsn}},
                "agg": {"type": "sql_aggregate", "meta": {"type": "postgres", "connection_string": self.dsn}},
                "csv": {"type": "csv", "meta": {"csv_dir": str(self.csv_dir(i))}},
            }
            config = self.tmp_path / f"pump-{i}.conf"
            doc = {
                "analytics_storage_config": self.storage,
                "purge_delay": 1,
                "purge_chunk": 1000,
                "telemetry": {"health_enabled": False, "shutdown_timeout": 10},
                "delivery": {"instance_id": f"scale-{i}", **self.delivery},
                "pumps": pumps,
            }
            config.write_text(json.dumps(doc))
            self.procs[i] = subprocess.Popen(
                pump_cmd("run", "--config", str(config)), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self.log(i).open("ab")
            )

    def alive(self) -> list[int]:
        return [i for i, p in self.procs.items() if p.poll() is None]

    def kill(self, i: int) -> None:
        self.procs[i].send_signal(signal.SIGKILL)
        self.procs[i].wait()

    def stop(self) -> dict[int, int]:
        for i in self.alive():
            self.procs[i].send_signal(signal.SIGTERM)
        return {i: p.wait(timeout=60) for i, p in self.procs.items()}

    def close(self) -> None:
        for i in self.alive():
            self.procs[i].kill()
            self.procs[i].wait()

    def claimed(self, i: int) -> int:
        """Records instance ``i`` claimed, from its "Purged." log lines."""
        return sum(int(m) for m in re.findall(r"Purged\.\s+claimed=(\d+)", self.log(i).read_text(errors="replace")))

    def delivered_csv(self, i: int) -> int:
        return len(csv_rows(self.csv_dir(i))) if self.csv_dir(i).exists() else 0

    def tails(self) -> str:
        return "\n".join(f"--- instance {i}\n" + "\n".join(self.log(i).read_text(errors="replace").splitlines()[-15:]) for i in self.procs)


@pytest.fixture
def fleet_factory(tmp_path: Path) -> Iterator[Callable[..., Fleet]]:
    fleets: list[Fleet] = []

    def make(storage: dict[str, Any], dsn: str, **delivery: Any) -> Fleet:
        fleets.append(Fleet(tmp_path, storage, dsn, **delivery))
        return fleets[-1]

    yield make
    for fleet in fleets:
        fleet.close()


def rows_in(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        exists = conn.execute("SELECT to_regclass('tyk_analytics')").fetchone()
        if not exists or exists[0] is None:
            return 0
        row = conn.execute("SELECT COUNT(*) FROM tyk_analytics").fetchone()
        return int(row[0]) if row else 0


def stored(dsn: str) -> tuple[int, set[str], int]:
    """(rows, distinct paths, the aggregate's total hits)."""
    with psycopg.connect(dsn) as conn:
        paths = [r[0] for r in conn.execute("SELECT path FROM tyk_analytics").fetchall()]
        hits = conn.execute("SELECT COALESCE(SUM(counter_hits), 0) FROM tyk_aggregated WHERE dimension = '' AND dimension_value = 'total'")
        row = hits.fetchone()
    return len(paths), set(paths), int(row[0]) if row else 0


def wait_for(condition: Callable[[], bool], timeout: float, what: str, fleet: Fleet) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if not fleet.alive():
            raise AssertionError(f"every pump exited while waiting for: {what}\n{fleet.tails()}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for: {what}\n{fleet.tails()}")


def cluster_client(server: servers.Server) -> RedisCluster:
    return RedisCluster.from_url(server.url)


def cluster_leftovers(rc: RedisCluster) -> tuple[int, list[str]]:
    """(records still in the gateway lists, the pump's own keys left anywhere in the cluster)."""
    records = sum(int(rc.llen(name)) for name in LISTS)
    keys = [k.decode() if isinstance(k, bytes) else str(k) for k in rc.scan_iter(match="*pump*")]
    return records, sorted(k for k in keys if ":g:" not in k and not k.startswith("pump:instance:"))


def assert_exactly_once(dsn: str, records: list[Any]) -> None:
    rows, paths, hits = stored(dsn)
    assert paths == {r.path for r in records}, f"{len({r.path for r in records} - paths)} records missing from PostgreSQL"
    assert rows == len(records), "the raw table has one row per record"
    assert hits == len(records), "the aggregate counted every record exactly once"


# --------------------------------------------------------------------------------------- cluster


def test_helper_keys_share_their_lists_slot_on_a_real_cluster(redis_cluster: servers.Server) -> None:
    """CLUSTER KEYSLOT, asked of the server: each list's lease, marks and batches keys are in its slot."""
    from pump.source.redis_list import SourceKey

    rc = cluster_client(redis_cluster)
    try:
        slots = set()
        for name in [*LISTS, f"{BASE_LIST}_protobuf", "odd}name", "a{}b{c}"]:
            key = SourceKey(name, "msgpack", "pump")
            slot = rc.cluster_keyslot(name)
            slots.add(slot)
            assert {rc.cluster_keyslot(k) for k in (key.leases, key.marks, key.batches, key.proc("t"), key.done("b"))} == {slot}
        owners = {rc.get_node_from_key(name).name for name in LISTS}
        assert len(owners) == 3 or redis_cluster.external, "the 11 lists spread over the 3 masters"
    finally:
        rc.close()


@pytest.mark.parametrize("instances", [1, 2, 3])
def test_n_instances_drain_a_cluster_exactly_once(
    instances: int, redis_cluster: servers.Server, pg_dsn: str, fleet_factory: Callable[..., Fleet]
) -> None:
    records = numbered(60_000)
    rc = cluster_client(redis_cluster)
    try:
        push_pipelined(rc, msgpack_payloads(records))
        fleet = fleet_factory(cluster_storage(redis_cluster), pg_dsn)
        fleet.start(instances)
        wait_for(lambda: rows_in(pg_dsn) >= len(records) and cluster_leftovers(rc) == (0, []), 300, "the drain", fleet)
        codes = fleet.stop()
        assert codes == dict.fromkeys(range(instances), 0), fleet.tails()
        assert_exactly_once(pg_dsn, records)
        per_instance = [fleet.delivered_csv(i) for i in range(instances)]
        print(f"\n[cluster x{instances}] CSV rows per instance {per_instance}; claimed {[fleet.claimed(i) for i in range(instances)]}")
        assert sum(per_instance) == len(records), "no batch was handed to two live instances"
        assert cluster_leftovers(rc) == (0, []), "no processing list, lease or marker is left"
    finally:
        rc.close()


def test_sigkill_of_one_instance_mid_drain_loses_nothing(
    redis_cluster: servers.Server, pg_dsn: str, fleet_factory: Callable[..., Fleet]
) -> None:
    records = numbered(60_000)
    rc = cluster_client(redis_cluster)
    try:
        push_pipelined(rc, msgpack_payloads(records))
        fleet = fleet_factory(cluster_storage(redis_cluster), pg_dsn, lease_seconds=3)
        fleet.start(3)
        wait_for(lambda: fleet.delivered_csv(0) > 0 and rows_in(pg_dsn) >= len(records) // 10, 300, "instance 0 to deliver", fleet)
        remaining = sum(int(rc.llen(name)) for name in LISTS)
        fleet.kill(0)
        assert remaining > 0, "the kill landed mid-drain"
        wait_for(lambda: rows_in(pg_dsn) >= len(records) and cluster_leftovers(rc) == (0, []), 300, "the survivors to drain", fleet)
        codes = fleet.stop()
        assert codes == {0: -signal.SIGKILL, 1: 0, 2: 0}, fleet.tails()
        assert_exactly_once(pg_dsn, records)
        print(f"\n[cluster sigkill] records left in Redis at the kill: {remaining}; CSV rows {[fleet.delivered_csv(i) for i in range(3)]}")
        assert cluster_leftovers(rc) == (0, [])
    finally:
        rc.close()


# -------------------------------------------------------------------------------------- sentinel


def test_sentinel_failover_during_a_drain_loses_nothing_and_counts_nothing_twice(
    redis_sentinel: servers.Server, pg_dsn: str, fleet_factory: Callable[..., Fleet]
) -> None:
    records = numbered(30_000)
    host, port = sentinel_master(redis_sentinel)
    master = redis.Redis(host=host, port=port)
    try:
        push_pipelined(master, msgpack_payloads(records))
        # WAIT on the connection that pushed: the replica has every record before the drain begins
        assert int(master.execute_command("WAIT", 1, 10_000)) >= 1, "the replica did not acknowledge the records"
    finally:
        master.close()
    fleet = fleet_factory(sentinel_storage(redis_sentinel), pg_dsn, lease_seconds=3)
    fleet.start(2)
    wait_for(lambda: rows_in(pg_dsn) >= len(records) // 10, 300, "the drain to be under way", fleet)
    assert rows_in(pg_dsn) < len(records), "the failover lands mid-drain"
    new_host, new_port = sentinel_failover(redis_sentinel, kill=not redis_sentinel.external)
    assert (new_host, new_port) != (host, port)
    promoted = redis.Redis(host=new_host, port=new_port)
    try:

        def drained() -> bool:
            return (
                rows_in(pg_dsn) >= len(records)
                and sum(int(promoted.llen(n)) for n in LISTS) == 0
                and not [k for k in promoted.scan_iter(match="*:pump:p:*")]
            )

        wait_for(drained, 300, "the drain to finish on the promoted replica", fleet)
        codes = fleet.stop()
        assert codes == {0: 0, 1: 0}, fleet.tails()
        assert_exactly_once(pg_dsn, records)
        print(f"\n[sentinel failover] CSV rows per instance {[fleet.delivered_csv(i) for i in range(2)]} (redelivered: at least once)")
    finally:
        promoted.close()


async def test_a_claim_behind_sentinel_waits_for_the_replica_and_stops_waiting_when_it_is_gone(
    redis_sentinel: servers.Server, caplog: pytest.LogCaptureFixture
) -> None:
    """With the replica up, a claim is on the replica when it returns (``WAIT``). With the replica
    frozen (SIGSTOP), the claim still returns its records after the timeout, says so, and the
    next claims do not wait."""
    from pump.config.model import StorageConfig
    from pump.source.connect import connect
    from pump.source.redis_list import RedisSource, SourceKey

    replica = next((m for m in redis_sentinel.members if m.name == "redis_sentinel replica"), None)
    if replica is None or replica.pid is None:
        pytest.skip("needs the replica started by tests/servers (it is frozen with SIGSTOP)")
    host, port = sentinel_master(redis_sentinel)
    push_pipelined(redis.Redis(host=host, port=port), [f"rec-{i}".encode() for i in range(len(LISTS) * 100)])
    r = connect(StorageConfig.model_validate(sentinel_storage(redis_sentinel)))
    source = RedisSource(r, "pump", "waiter", lease_seconds=30, wait_timeout=0.3)
    assert source.wait_replicas == 1, "Sentinel's default"
    key = SourceKey(BASE_LIST, "msgpack", "pump")
    on_replica = redis.Redis(host="127.0.0.1", port=replica.port or 0)
    try:
        first = await source.claim(key, 40)
        assert first is not None and len(first.raws) == 40
        assert on_replica.llen(key.proc(first.token)) == 40, "the claim reached the replica before it returned"
        os.kill(replica.pid, signal.SIGSTOP)
        try:
            second = await source.claim(key, 40)
            assert second is not None and len(second.raws) == 40, "the records are handed out anyway"
            assert "Fewer Redis replicas than wanted acknowledged a claim" in caplog.text
            caplog.clear()
            third = await source.claim(key, 20)
            assert third is not None and len(third.raws) == 20
            assert "Fewer Redis replicas" not in caplog.text, "no waiting (and no warning) for a while"
        finally:
            os.kill(replica.pid, signal.SIGCONT)
    finally:
        on_replica.close()
        await r.aclose()


def test_cluster_master_failover_during_a_drain_loses_nothing_and_counts_nothing_twice(
    tmp_path: Path, pg_dsn: str, fleet_factory: Callable[..., Fleet]
) -> None:
    """A cluster of 3 masters with a replica each; the master of the busiest list is SIGKILLed
    while two instances drain (``wait_replicas: 1``): its replica takes over and nothing is lost
    or counted twice. Records are first acknowledged by the replicas (WAIT per master)."""
    if os.environ.get(servers.ENV_VARS["redis_cluster"]):
        pytest.skip("kills a master: needs a cluster started by tests/servers")
    from tests.servers.redis_cluster import start_redis_cluster

    srv = start_redis_cluster(tmp_path / "cluster", masters=3, replicas=1)
    rc = RedisCluster.from_url(srv.url)
    try:
        records = numbered(30_000)
        by_node: dict[tuple[str, int], list[tuple[str, list[bytes]]]] = {}
        for name, part in spread(msgpack_payloads(records)).items():
            node = rc.get_node_from_key(name)
            by_node.setdefault((node.host, int(node.port)), []).append((name, part))
        for (host, port), parts in by_node.items():
            master = redis.Redis(host=host, port=port)
            with master.pipeline(transaction=False) as pipe:
                for name, part in parts:
                    pipe.rpush(name, *part)
                pipe.execute_command("WAIT", 1, 10_000)  # same connection: the replica has these records
                assert int(pipe.execute()[-1]) == 1, f"the replica of {host}:{port} did not acknowledge"
            master.close()
        victim_port = int(rc.get_node_from_key(BASE_LIST).port)
        victim = next(m for m in srv.members if m.port == victim_port)
        storage = {"enable_cluster": True, "addrs": list(srv.details["nodes"])}
        fleet = fleet_factory(storage, pg_dsn, lease_seconds=3, wait_replicas=1)
        fleet.start(2)
        wait_for(lambda: rows_in(pg_dsn) >= len(records) // 10, 300, "the drain to be under way", fleet)
        assert rows_in(pg_dsn) < len(records), "the failover lands mid-drain"
        assert victim.pid is not None
        os.kill(victim.pid, signal.SIGKILL)
        victim.stop()

        def drained() -> bool:
            if rows_in(pg_dsn) < len(records):
                return False
            try:
                return cluster_leftovers(rc) == (0, [])
            except (redis.RedisError, OSError):  # the cluster is still failing over
                return False

        wait_for(drained, 300, "the drain to finish after the failover", fleet)
        codes = fleet.stop()
        assert codes == {0: 0, 1: 0}, fleet.tails()
        assert_exactly_once(pg_dsn, records)
        print(f"\n[cluster failover] CSV rows per instance {[fleet.delivered_csv(i) for i in range(2)]} (redelivered: at least once)")
    finally:
        rc.close()
        srv.stop()


async def test_the_claim_protocol_on_a_cluster_returns_batches_under_their_id_and_survives_a_flushed_script_cache(
    redis_cluster: servers.Server,
) -> None:
    """Claim, release, claim again (same batch id and records), acknowledge — on every master;
    then the same after the nodes forgot their scripts (a restart or a failover does that)."""
    from redis.asyncio.cluster import RedisCluster as AsyncCluster

    from pump.source.redis_list import RedisSource, SourceKey

    rc = cluster_client(redis_cluster)
    arc = AsyncCluster.from_url(redis_cluster.url)
    try:
        for name in LISTS:
            rc.rpush(name, *[f"{name}-{i}".encode() for i in range(10)])
        source = RedisSource(arc, "pump", "protocol", lease_seconds=30)
        for flush in (False, True):
            if flush:
                for node in rc.get_primaries():
                    plain = redis.Redis(host=node.host, port=int(node.port))
                    plain.script_flush()
                    plain.close()
            for name in LISTS:
                key = SourceKey(name, "msgpack", "pump")
                first = await source.claim(key, 5)
                assert first is not None and first.raws == [f"{name}-{i}".encode() for i in (range(5) if not flush else range(5, 10))]
                await source.mark_done(first, "csv")
                await source.release(first)
                again = await source.claim(key, 5)
                assert again is not None and (again.batch_id, again.raws, again.done) == (first.batch_id, first.raws, {"csv"})
                await source.ack(again)
        assert cluster_leftovers(rc) == (0, [])
    finally:
        await arc.aclose()
        rc.close()
