"""The whole pipeline with a Tyk-Dashboard pump.conf (config/pump.tyk-dashboard.json): payloads
encoded by Tyk's own Go code pushed to a real Redis → ``pump run --once`` → documents read back
from the Mongo-wire server and compared with what Tyk computes for the same records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pump.aggregate.mongo_update import MIXED_COLLECTION
from tests.helpers import ROOT, push, run_once, run_pump, write_config
from tests.integration.test_mongo_aggregate import norm

pytestmark = pytest.mark.integration

FIXTURES = ROOT / "tests" / "fixtures" / "tyk"
DASHBOARD_CONFIG = ROOT / "config" / "pump.tyk-dashboard.json"
UPTIME_LIST = "host-checker:tyk-uptime-analytics"

#: Tyk's JSON counter names → Mongo names (tyk-pump.md §3.2); last_time differs on purpose
#: (pump/aggregate/engine.py) and the averages are compared separately.
COUNTER_NAMES = {
    "hits": "hits", "success": "success", "error": "errortotal", "total_request_time": "totalrequesttime",
    "total_latency": "totallatency", "total_upstream_latency": "totalupstreamlatency", "max_latency": "maxlatency",
    "max_upstream_latency": "maxupstreamlatency", "min_latency": "minlatency", "min_upstream_latency": "minupstreamlatency",
    "identifier": "identifier", "human_identifier": "humanidentifier", "error_map": "errormap",
}  # fmt: skip
DIMENSIONS = {"APIKeys": "apikeys", "Errors": "errors", "Versions": "versions", "APIID": "apiid", "OauthIDs": "oauthids", "Geo": "geo",
              "Tags": "tags", "Endpoints": "endpoints", "ApiEndpoint": "apiendpoints"}  # fmt: skip
NESTED = {"KeyEndpoint": "keyendpoints", "OauthEndpoint": "oauthendpoints"}


def dashboard_config(path: Path, redis_url: str, mongo_url: str) -> Path:
    """The shipped Dashboard pump.conf, pointed at the test servers."""
    conf = json.loads(DASHBOARD_CONFIG.read_text())
    for pump in conf["pumps"].values():
        pump["meta"]["mongo_url"] = mongo_url
    conf["uptime_pump_config"]["mongo_url"] = mongo_url
    return write_config(
        path,
        redis_url,
        conf["pumps"],
        uptime_pump_config=conf["uptime_pump_config"],
        dont_purge_uptime_data=False,
        log_level="warn",
    )


def check_counter(stored: dict[str, Any], expected: dict[str, Any], where: str) -> None:
    for go_name, mongo_name in COUNTER_NAMES.items():
        want = expected[go_name] or ({} if go_name == "error_map" else expected[go_name])
        if mongo_name.startswith("min") and expected["hits"] == expected["error"]:
            assert mongo_name not in stored, f"{where}.{mongo_name}"  # Tyk sends no $min for all-error counters
            continue
        assert stored.get(mongo_name, {} if go_name == "error_map" else None) == want, f"{where}.{mongo_name}"
    hits = expected["hits"]
    if hits:
        assert stored["latency"] == pytest.approx(expected["total_latency"] / hits), where
        assert stored["requesttime"] == pytest.approx(expected["total_request_time"] / hits), where


def check_aggregate(doc: dict[str, Any], tyk: dict[str, Any]) -> None:
    """A stored aggregate document against Tyk's ``AggregateData`` of the same records."""
    assert doc["timestamp"].isoformat().replace("+00:00", "Z") == tyk["TimeStamp"]
    assert doc["timeid"] == {
        "year": tyk["TimeID"]["Year"],
        "month": tyk["TimeID"]["Month"],
        "day": tyk["TimeID"]["Day"],
        "hour": tyk["TimeID"]["Hour"],
    }
    check_counter(doc["total"], tyk["Total"], "total")
    for go_dim, dim in DIMENSIONS.items():
        assert set(doc.get(dim, {})) == set(tyk[go_dim] or {}), dim
        for key, counter in (tyk[go_dim] or {}).items():
            check_counter(doc[dim][key], counter, f"{dim}.{key}")
        assert len(doc["lists"][dim]) == len(tyk[go_dim] or {}), f"lists.{dim}"
    for go_dim, dim in NESTED.items():
        for outer, inner in (tyk[go_dim] or {}).items():
            for key, counter in inner.items():
                check_counter(doc[dim][outer][key], counter, f"{dim}.{outer}.{key}")


def test_dashboard_config_is_valid() -> None:
    proc = run_pump("validate", "--config", str(DASHBOARD_CONFIG))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "mongo-pump-aggregate" in proc.stdout


def test_gateway_payloads_to_tyk_documents(tmp_path: Path, redis_url: str, db_url: str, db: Any) -> None:
    aggregates = json.loads((FIXTURES / "aggregates.json").read_text())["cases"]
    case = next(c for c in aggregates if c["name"] == "main_track_all_paths_false")
    records = json.loads((FIXTURES / "records.json").read_text())["cases"]
    uptime = json.loads((FIXTURES / "uptime.json").read_text())["cases"]
    push(redis_url, [bytes.fromhex(r["msgpack_hex"]) for r in case["records"]])
    push(redis_url, [bytes.fromhex(c["msgpack_hex"]) for c in records], key="analytics-tyk-system-analytics_3")
    push(redis_url, [bytes.fromhex(c["msgpack_hex_gateway_shape"]) for c in uptime], key=UPTIME_LIST)

    proc = run_once(dashboard_config(tmp_path / "pump.json", redis_url, db_url))
    assert proc.returncode == 0, proc.stderr[-3000:]

    # mongo: one document per distinct record, minus the -1 and MCP records.
    raw_go = [c["go_json"] for c in records] + [r["go_json"] for r in case["records"]]
    kept = {json.dumps(g, sort_keys=True) for g in raw_go if g["response_code"] != -1 and not g["mcp_stats"]["is_mcp"]}
    assert db.tyk_analytics.count_documents({}) == len(kept)
    doc = db.tyk_analytics.find_one({"path": "/users/42", "orgid": "5e9d9544a1dcd60001d0ed20"})
    assert doc["rawpath"] == "/users/42" and doc["geo"]["city"]["geonameid"] == 2643743 and doc["latency"]["gateway"] == 2
    big = [d for d in db.tyk_analytics.find() if len(d["rawrequest"]) + len(d["rawresponse"]) + 1024 > 20112]
    assert big == []  # max_document_size_bytes 20112 of the Dashboard config

    # mongo-pump-aggregate: the org's document equals Tyk's aggregate of the same records.
    org_doc = db.z_tyk_analyticz_aggregate_orgA.find_one()
    check_aggregate(org_doc, case["aggregate"]["orgA"])
    mixed = db[MIXED_COLLECTION].find_one({"orgid": "orgA"})
    assert norm(mixed) == norm(org_doc)
    assert db[MIXED_COLLECTION].count_documents({}) == len({d["orgid"] for d in db[MIXED_COLLECTION].find()})

    # uptime_pump_config: one document per host-checker result.
    assert db.tyk_uptime_analytics.count_documents({}) == len({c["msgpack_hex_gateway_shape"] for c in uptime})
    assert db.tyk_uptime_analytics.find_one({"url": uptime[0]["go_json"]["url"]})["requesttime"] == uptime[0]["go_json"]["request_time"]

    # Nothing is left in Redis but what the pump keeps for itself.
    from tests.helpers import list_lengths

    assert all(n == 0 for n in list_lengths(redis_url).values())
