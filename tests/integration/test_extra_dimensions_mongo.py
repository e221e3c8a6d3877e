"""Issue 13 on a real Mongo-wire server (FerretDB): ``mongo-pump-aggregate`` with
``extra_dimensions`` and a ``mask``, through ``pump run --once``. The extra dimensions are one more
map per dimension plus its ``lists.*`` array; Tyk's keys are what they are without the option;
masked API keys are the only keys stored, while a raw ``mongo`` pump beside it keeps the originals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pump.record import Record
from tests.helpers import msgpack_payloads, push, run_once, write_config

pytestmark = pytest.mark.integration

T0 = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
ROWS = [
    (200, CHROME, "5e9d9544aaaa0001"),
    (503, CHROME, "5e9d9544bbbb0002"),
    (429, FIREFOX, "5e9d9544cccc0003"),
    (200, "", "5e9d9544aaaa0001"),
]


def records() -> list[Record]:
    return [
        Record(
            org_id="orgx", api_id="api1", api_name="API 1", response_code=code, user_agent=ua, api_key=key,
            path=f"/p/{i}", timestamp=T0 + timedelta(seconds=i), request_time=10, latency_total=10, tags=[f"key-{key}"],
        )
        for i, (code, ua, key) in enumerate(ROWS)
    ]  # fmt: skip


def test_extra_dimensions_and_masked_keys_in_mongo(tmp_path: Path, redis_url: str, db_url: str, db: Any) -> None:
    pumps = {
        "raw": {"type": "mongo", "meta": {"mongo_url": db_url, "collection_name": "raw"}},
        "agg": {
            "type": "mongo-pump-aggregate",
            "meta": {"mongo_url": db_url},
            "extra_dimensions": ["eventkinds", "browsers", "platforms"],
            "mask": {"fields": {"api_key": "OBFUSCATE"}},
        },
    }
    push(redis_url, msgpack_payloads(records()))
    proc = run_once(write_config(tmp_path / "pump.json", redis_url, pumps))
    assert proc.returncode == 0, proc.stderr[-4000:]

    (doc,) = list(db["z_tyk_analyticz_aggregate_orgx"].find())
    assert {k: v["hits"] for k, v in doc["eventkinds"].items()} == {"request": 2, "fault": 1, "throttled": 1}
    assert {k: v["hits"] for k, v in doc["browsers"].items()} == {"Chrome": 2, "Firefox": 1}
    assert {k: v["hits"] for k, v in doc["platforms"].items()} == {"Windows": 2, "Linux": 1}
    assert doc["eventkinds"]["fault"]["errormap"] == {"503": 1}
    assert sorted(e["identifier"] for e in doc["lists"]["eventkinds"]) == ["fault", "request", "throttled"]
    assert doc["eventkinds"]["request"]["latency"] == 10.0
    assert doc["total"]["hits"] == 4
    # Masked keys only in the aggregate; the raw pump beside it has the originals.
    assert sorted(doc["apikeys"]) == ["****0001", "****0002", "****0003"]
    assert "5e9d9544" not in repr(doc)
    assert sorted({d["apikey"] for d in db["raw"].find()}) == ["5e9d9544aaaa0001", "5e9d9544bbbb0002", "5e9d9544cccc0003"]
