"""The supervisor's pure parts (``pump run --workers``): the summed /metrics and the workers'
configs. The processes themselves are tested in tests/integration/test_workers.py."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pump.config.model import Config
from pump.supervisor import sum_metrics, worker_config
from pump.telemetry.metrics import Metrics


def worker_text(claimed: int, queued: int, backlog: int, tick: float) -> str:
    m = Metrics(CollectorRegistry())
    m.records_claimed.labels("analytics").inc(claimed)
    m.queue_records.labels("csv").set(queued)
    m.source_backlog.labels("analytics").set(backlog)
    m.last_tick.set(tick)
    m.batch_seconds.observe(0.5)
    return generate_latest(m.registry).decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(text) for s in f.samples}


def test_counters_and_held_amounts_add_up_observations_of_shared_state_do_not() -> None:
    out = samples(sum_metrics([worker_text(100, 7, 5000, 1000.0), worker_text(250, 3, 4800, 1010.0)]))
    assert out[("pump_records_claimed_total", (("source", "analytics"),))] == 350
    assert out[("pump_queue_records", (("pump", "csv"),))] == 10  # each worker's own queue
    assert out[("pump_source_backlog_records", (("source", "analytics"),))] == 5000  # one list, seen twice
    assert out[("pump_loop_last_tick_timestamp_seconds", ())] == 1010.0
    assert out[("pump_batch_latency_seconds_count", ())] == 2


def test_each_worker_has_its_own_instance_id_and_a_private_health_port() -> None:
    cfg = Config.model_validate({"delivery": {"instance_id": "host-a"}, "telemetry": {"metrics_address": "0.0.0.0:9100"}})
    a, b = worker_config(cfg, 0, 41000), worker_config(cfg, 1, 41001)
    assert (a.delivery.instance_id, b.delivery.instance_id) == ("host-a-w0", "host-a-w1")
    assert (a.health_check_endpoint_port, a.telemetry.health_bind, a.telemetry.metrics_address) == (41000, "127.0.0.1", "")
    assert cfg.delivery.instance_id == "host-a" and cfg.telemetry.metrics_address == "0.0.0.0:9100"


def test_the_memory_budget_is_the_pumps_split_between_the_workers_not_multiplied() -> None:
    cfg = Config.model_validate({"delivery": {"max_memory": "150MiB"}})
    shares = [worker_config(cfg, i, 41000 + i, workers=3).delivery.max_memory for i in range(3)]
    assert shares == [50 << 20] * 3
    assert worker_config(cfg, 0, 41000).delivery.max_memory == 150 << 20  # one worker: all of it
    assert cfg.delivery.max_memory == 150 << 20


def test_the_supervisor_answers_health_and_ready_as_one_process_would() -> None:
    import json

    from pump.supervisor import health_body

    ok = b'{"status": "ok"}'
    assert health_body(True, True, [(200, ok), (200, ok)]) == ok  # tyk-pump.md: body exactly {"status": "ok"}
    starting = b'{"status":"starting"}'
    assert health_body(True, False, [(503, starting), (503, starting)]) == starting  # they agree
    down = json.loads(health_body(True, False, [(200, ok), (503, b'{"status": "stalled"}')]))
    assert down == {"status": "stalled", "workers": [{"status": "ok"}, {"status": "stalled"}]}
    a, b = (
        b'{"status": "not ready", "reason": "redis unavailable", "t": 1}',
        b'{"status": "not ready", "reason": "redis unavailable", "t": 2}',
    )
    ready = json.loads(health_body(False, False, [(503, a), (503, b)]))
    assert (ready["status"], ready["reason"], len(ready["workers"])) == ("not ready", "redis unavailable", 2)
    fine = json.loads(health_body(False, True, [(200, b'{"status": "ready", "t": 1}'), (200, b'{"status": "ready", "t": 2}')]))
    assert fine["status"] == "ready" and fine["workers"][1] == {"status": "ready", "t": 2}


def test_a_zombie_is_not_a_live_pump_holding_its_instance_id() -> None:
    """A worker SIGKILLed with its supervisor is a zombie until its new parent reaps it; a pump
    restarted at once (forked workers start within milliseconds) must not refuse its own instance
    id because of it. The signal-0 probe alone says a zombie exists."""
    import os
    import signal
    import time

    from pump.source.redis_list import _pid_alive

    pid = os.fork()
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    try:
        assert _pid_alive(pid)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(pid, 0)  # not reaped yet: it still exists, as a zombie
        assert not _pid_alive(pid)
    finally:
        os.waitpid(pid, 0)
    assert not _pid_alive(pid)
