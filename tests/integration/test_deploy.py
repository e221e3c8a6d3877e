"""deploy/ against a real pump: every metric a Grafana panel or an alert rule queries exists in a
real scrape (of the pump's /metrics, and of the ``prometheus`` pump for the analytics dashboard),
the README's metrics table lists exactly what a scrape shows, and the rules parse (promtool)."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import servers
from tests.helpers import ROOT, client, make_record, msgpack_payloads, push, write_config
from tests.integration.test_prometheus_pump import delivered, free_ports, stop
from tests.integration.test_reliability import start_daemon, wait_for
from tests.scrape import get, parse, types
from tests.servers import promtool as promtool_build

pytestmark = pytest.mark.integration

DEPLOY = ROOT / "deploy"
#: PromQL words that are not metric names.
_PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
    "sum", "min", "max", "avg", "count", "topk", "bottomk", "quantile", "stddev", "count_values", "inf", "nan",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: strings, label matchers, ranges, grouping
    clauses and function calls removed, what is left are selectors."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        word = m.group()
        rest = expr[m.end() :].lstrip()
        if word in _PROMQL_WORDS or rest.startswith("(") or expr[max(0, m.start() - 1)] in "$.":
            continue
        names.add(word)
    return names


@pytest.fixture(scope="module")
def scrapes(redis_server: servers.Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(the pump's /metrics, the prometheus pump's exposition) of a daemon that drained records."""
    r = client(redis_server.url)
    r.flushdb()
    r.close()
    tmp = tmp_path_factory.mktemp("deploy")
    health, prom = free_ports(2)
    config = write_config(
        tmp / "pump.conf", redis_server.url,
        {"csv": {"type": "csv", "meta": {"csv_dir": str(tmp / "csv")}},
         "prom": {"type": "prometheus", "meta": {"listen_address": f"127.0.0.1:{prom}", "track_all_paths": True}}},
        health_check_endpoint_port=health, telemetry={"health_enabled": True, "health_bind": "127.0.0.1"},
    )  # fmt: skip
    proc = start_daemon(config, tmp / "pump.log")
    try:
        records = [make_record(response_code=code, oauth_id="client-1") for code in (200, 404, 500) * 10]
        push(redis_server.url, msgpack_payloads(records))
        pump_url = f"http://127.0.0.1:{health}/metrics"
        wait_for(lambda: delivered(pump_url) == 30, 60, "delivery", proc)
        # The backlog and dead-letter gauges come with the first housekeeping round (≤ 5 s).
        wait_for(lambda: "pump_source_backlog_records{" in get(pump_url)[1], 30, "the first housekeeping round", proc)
        yield get(pump_url)[1], get(f"http://127.0.0.1:{prom}/metrics")[1]
    finally:
        stop(proc)


def sample_names(text: str) -> set[str]:
    return set(parse(text))


def dashboard_exprs(path: Path) -> list[str]:
    doc = json.loads(path.read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p["targets"]]
    for var in doc["templating"]["list"]:
        if var["type"] == "query":
            exprs.append(re.sub(r"label_values\((\w+),.*", r"\1", var["definition"]))
    return exprs


def rules(path: Path) -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def test_readme_metrics_table_lists_exactly_the_families_of_a_real_scrape(scrapes: tuple[str, str]) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Metrics, health and logs", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    documented = {name for cell in rows for name in re.findall(r"`([a-z_]+\*?)`", cell)}
    globs = {d[:-1] for d in documented if d.endswith("*")}
    families = set(types(scrapes[0]))
    undocumented = {f for f in families if f not in documented and not f.startswith(tuple(globs))}
    assert not undocumented, f"metrics missing from the README table: {sorted(undocumented)}"
    stale = {d for d in documented - families if not d.endswith("*") and not d.startswith(tuple(globs))}
    assert not stale, f"README documents metrics the pump does not expose: {sorted(stale)}"
    assert {"process_resident_memory_bytes", "python_info", "pump_info"} <= families
    assert not [n for n in sample_names(scrapes[0]) if n.endswith("_created")], "no _created series"
    assert 'pump_info{pump="prom",type="prometheus"} 1.0' in scrapes[0]


def test_pump_dashboard_queries_only_metrics_the_pump_exposes(scrapes: tuple[str, str]) -> None:
    names = sample_names(scrapes[0])
    exprs = dashboard_exprs(DEPLOY / "grafana" / "pump.json")
    used = set().union(*(metric_names(e) for e in exprs))
    assert {"pump_records_delivered_total", "pump_source_backlog_records", "pump_failing", "pump_redis_up",
            "pump_write_duration_seconds_bucket", "pump_batch_latency_seconds_bucket", "pump_deadletter_records"} <= used  # fmt: skip
    assert used - names == set(), f"panels query metrics a scrape does not have: {sorted(used - names)}"


def test_analytics_dashboard_queries_only_metrics_the_prometheus_pump_exposes(scrapes: tuple[str, str]) -> None:
    names = sample_names(scrapes[1])
    used = set().union(*(metric_names(e) for e in dashboard_exprs(DEPLOY / "grafana" / "pump-analytics.json")))
    assert {"tyk_http_status", "tyk_latency_bucket", "tyk_http_status_per_path"} <= used
    assert used - names == set(), f"panels query metrics a scrape does not have: {sorted(used - names)}"


def test_dashboards_are_well_formed() -> None:
    for path in (DEPLOY / "grafana").glob("*.json"):
        doc = json.loads(path.read_text())
        ids = [p["id"] for p in doc["panels"]]
        assert len(ids) == len(set(ids)) and doc["uid"] and doc["title"], path.name
        for p in doc["panels"]:
            assert p["targets"] and all(t["expr"] and t["refId"] for t in p["targets"]), (path.name, p["title"])
            assert p["datasource"]["uid"] == "${datasource}", "panels use the dashboard's data source variable"
            assert p["gridPos"]["x"] >= 0 and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24


def test_alert_rules_query_only_metrics_a_scrape_has(scrapes: tuple[str, str]) -> None:
    names = sample_names(scrapes[0]) | sample_names(scrapes[1])
    alerts = rules(DEPLOY / "prometheus" / "alerts.yaml")
    by_name = {r["alert"]: r for r in alerts}
    assert {"PumpFailing", "PumpBacklogGrowing", "PumpDeadLetters", "PumpNoAck", "PumpRedisDown"} <= set(by_name)
    for rule in alerts:
        used = metric_names(rule["expr"])
        assert used and used <= names, f"{rule['alert']} queries {sorted(used - names)}, which no scrape has"


def test_alert_rules_are_well_formed() -> None:
    """The structural check that needs no promtool: keys, durations, severities, templates."""
    doc = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())
    assert set(doc) == {"groups"}
    for group in doc["groups"]:
        assert set(group) <= {"name", "interval", "rules"} and group["name"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}, rule
            assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", rule["alert"])
            assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
            assert "for" not in rule or re.fullmatch(r"\d+[smhd]", rule["for"])
            assert rule["labels"]["severity"] in ("warning", "critical")
            assert rule["annotations"]["summary"].count("{{") == rule["annotations"]["summary"].count("}}")


@pytest.mark.timeout(3600)  # the first run builds promtool from the Go module proxy (~15 min on 2 busy cores)
def test_promtool_accepts_the_rules() -> None:
    try:
        promtool = promtool_build.promtool_binary()
    except servers.ServerError as exc:
        pytest.skip(f"promtool cannot be built here ({str(exc).splitlines()[0]}); the structural check ran instead")
    out = subprocess.run([str(promtool), "check", "rules", str(DEPLOY / "prometheus" / "alerts.yaml")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 9 rules found" in out.stdout + out.stderr
