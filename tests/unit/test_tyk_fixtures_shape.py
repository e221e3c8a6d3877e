"""Shape checks for the golden fixtures generated from Tyk Pump's Go code.

The files in tests/fixtures/tyk/ are produced by scripts/gen-tyk-fixtures
(tests/tools/tykfixtures, which imports github.com/TykTechnologies/tyk-pump).
These tests only check that the committed files are well-formed, so that tests
consuming them fail loudly on a broken regeneration rather than on a KeyError.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "tyk"
FILES = ("records.json", "csv_header.json", "uptime.json", "aggregates.json")


def load(name: str) -> Any:
    with (FIXTURES / name).open(encoding="utf-8") as fh:
        return json.load(fh)


def is_hex(value: Any) -> bool:
    if not isinstance(value, str) or len(value) % 2:
        return False
    try:
        bytes.fromhex(value)
    except ValueError:
        return False
    return value == value.lower()


@pytest.mark.parametrize("name", FILES)
def test_generator_block(name: str) -> None:
    data = load(name)
    assert isinstance(data, dict)
    assert next(iter(data)) == "generator"
    gen = data["generator"]
    assert gen["tyk_pump_module"] == "github.com/TykTechnologies/tyk-pump"
    assert gen["tyk_pump_version"].startswith("v1.")
    assert gen["go_version"].startswith("go")
    assert gen["TZ"] == "UTC"
    assert isinstance(gen["notes"], list) and gen["notes"]


def test_csv_header() -> None:
    data = load("csv_header.json")
    names = data["field_names"]
    assert len(names) == 42
    assert all(isinstance(n, str) and n for n in names)
    assert data["csv_line"] == ",".join(names) + "\n"


def test_records() -> None:
    header = load("csv_header.json")["field_names"]
    cases = load("records.json")["cases"]
    assert len(cases) >= 15
    assert len({c["name"] for c in cases}) == len(cases)
    for case in cases:
        for key in (
            "name",
            "description",
            "msgpack_hex",
            "protobuf_hex",
            "go_json",
            "go_json_text",
            "go_json_from_protobuf",
            "csv_row",
            "csv_line",
        ):
            assert key in case, (case.get("name"), key)
        name = case["name"]
        assert isinstance(case["description"], str) and case["description"], name
        assert is_hex(case["msgpack_hex"]), name
        # A Go struct with 35 exported fields -> msgpack map16 header de 00 23.
        assert case["msgpack_hex"].startswith("de0023"), name
        assert isinstance(case["go_json"], dict), name
        assert json.loads(case["go_json_text"]) == case["go_json"], name
        if case.get("protobuf_error"):
            assert case["protobuf_hex"] is None, name
            assert case["go_json_from_protobuf"] is None, name
        else:
            assert is_hex(case["protobuf_hex"]), name
            assert isinstance(case["go_json_from_protobuf"], dict), name
        row = case["csv_row"]
        assert isinstance(row, list) and len(row) == len(header), name
        assert all(isinstance(v, str) for v in row), name


def test_uptime() -> None:
    data = load("uptime.json")
    assert 2 <= len(data["cases"]) <= 5
    for case in data["cases"]:
        for key in ("name", "description", "msgpack_hex", "msgpack_hex_gateway_shape", "go_json"):
            assert key in case, (case.get("name"), key)
        assert is_hex(case["msgpack_hex"]) and is_hex(case["msgpack_hex_gateway_shape"])
        assert isinstance(case["go_json"], dict)
    assert isinstance(data["aggregate"], dict)
    assert isinstance(data["sql_rows"], list) and data["sql_rows"]


def test_aggregates() -> None:
    data = load("aggregates.json")
    cases = data["cases"]
    assert len({c["name"] for c in cases}) == len(cases)
    for case in cases:
        for key in (
            "name",
            "description",
            "track_all_paths",
            "ignore_tag_prefix_list",
            "db_identifier",
            "aggregation_time",
            "records",
            "aggregate",
            "mongo",
            "sql_rows",
        ):
            assert key in case, (case.get("name"), key)
        name = case["name"]
        assert isinstance(case["track_all_paths"], bool), name
        assert isinstance(case["ignore_tag_prefix_list"], list), name
        assert case["aggregation_time"] in (1, 60), name
        assert case["records"], name
        for rec in case["records"]:
            assert is_hex(rec["msgpack_hex"]) and isinstance(rec["go_json"], dict), name
        if case.get("panic"):
            assert case["aggregate"] is None, name
            continue
        assert isinstance(case["aggregate"], dict) and case["aggregate"], name
        assert set(case["mongo"]) == set(case["aggregate"]), name
        assert set(case["sql_rows"]) == set(case["aggregate"]), name
        for org, mongo in case["mongo"].items():
            assert {"collection", "query", "as_change", "as_time_update_in_memory"} <= set(mongo), (name, org)
            assert {"$inc", "$set", "$max"} <= set(mongo["as_change"]), (name, org)
        for org, rows in case["sql_rows"].items():
            ids = [r["columns"]["id"] for r in rows]
            assert ids == sorted(ids) and len(set(ids)) == len(ids), (name, org)
            for r in rows:
                assert bytes.fromhex(r["columns"]["id"]).decode() == r["id_source"], (name, org)
    assert isinstance(data["on_conflict_assignments"], dict) and data["on_conflict_assignments"]
    assert data["process_status_codes"] and data["trim_tag"]
    assert data["mongo_identifier_sequence"]["steps"]
