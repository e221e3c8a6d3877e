"""``sql_aggregate`` ``mode: wso2_summary`` on real PostgreSQL and SQLite: WSO2's summary tables
with exact rows for a fixed set of records (requests, a fault, a throttled call, an OAuth client
without user agent or geo), a redelivered and a split-then-redelivered batch counted once, the
mapping's NULLs, and the retention of a granularity."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from pump.aggregate.wso2 import unix_ms
from pump.record import Record
from pump.sinks.base import SinkBatch
from pump.sinks.sql import aggregate as agg
from pump.sinks.sql.config import target_of
from pump.sinks.sql.wso2 import Wso2SummarySink
from tests.integration import sql_helpers
from tests.integration.sql_helpers import Db

pytestmark = pytest.mark.integration
pg_dsn = sql_helpers.pg_dsn  # fixture


@pytest.fixture(params=["postgres", "sqlite"])
def db(request: pytest.FixtureRequest, tmp_path: Any) -> Db:
    """PostgreSQL and SQLite (the WSO2 mode is refused on MySQL at validate)."""
    if request.param == "postgres":
        return Db("postgres", request.getfixturevalue("pg_dsn"))
    return Db("sqlite", str(tmp_path / "pump.sqlite"))


CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
T1 = datetime(2024, 3, 1, 10, 5, tzinfo=UTC)
T2 = datetime(2024, 3, 1, 10, 20, tzinfo=UTC)
T3 = datetime(2024, 3, 1, 10, 40, tzinfo=UTC)
T4 = datetime(2024, 3, 1, 11, 10, tzinfo=UTC)
H10, H11, DAY = (
    unix_ms(datetime(2024, 3, 1, 10, tzinfo=UTC)),
    unix_ms(datetime(2024, 3, 1, 11, tzinfo=UTC)),
    unix_ms(datetime(2024, 3, 1, tzinfo=UTC)),
)
HOST = "gw.example.com"


def records() -> list[Record]:
    common: dict[str, Any] = dict(org_id="org1", api_id="api1", api_name="Pets", api_version="v1", listen_path="/pets/", host=HOST,
                                  path="/pets/{id}", method="GET")  # fmt: skip
    boston: dict[str, Any] = dict(geo_country_iso_code="US", geo_city_names={"en": "Boston"})
    return [
        Record(**common, **boston, timestamp=T1, response_code=200, api_key="key1", alias="alice", user_agent=CHROME,
               request_time=100, latency_upstream=80, latency_gateway=20),
        Record(**common, **boston, timestamp=T2, response_code=503, api_key="key1", alias="alice", user_agent=FIREFOX,
               request_time=300, latency_upstream=290, latency_gateway=10),
        Record(**common, **boston, timestamp=T3, response_code=429, api_key="key1", alias="alice", user_agent=CHROME,
               request_time=5, latency_upstream=0, latency_gateway=5),
        Record(**common, timestamp=T4, response_code=200, oauth_id="client9", request_time=50, latency_upstream=40, latency_gateway=10),
    ]  # fmt: skip


def sink(db: Db, **meta: Any) -> Wso2SummarySink:
    m = agg.Meta(**db.meta, mode="wso2_summary", rollups=["hour", "day"], **meta)
    return Wso2SummarySink("wso2", m, target_of(m), m.rollups, m.ledger_retention_days)


async def write(s: Wso2SummarySink, *batches: SinkBatch) -> None:
    await s.start()
    try:
        for b in batches:
            await s.write(b)
    finally:
        await s.close()


def rows(db: Db, table: str, columns: str) -> list[tuple[Any, ...]]:
    names = ", ".join(f'"{c}"' for c in columns.split())
    return db.rows(f'SELECT {names} FROM "{table}" ORDER BY 1, 2, 3')


def golden(n: int = 1) -> dict[tuple[str, str], list[tuple[Any, ...]]]:
    """(table, columns) → exact rows; ``n`` = how many distinct batches of the records were written."""
    return {
        ("ApiUserPerAppAgg_HOURS", "AGG_TIMESTAMP applicationId username userTenantDomain apiContext apiHostname AGG_COUNT "
         "AGG_LAST_EVENT_TIMESTAMP apiName applicationOwner gatewayType"): [
            (H10, "key1", "alice", "org1", "/pets/", HOST, 2 * n, unix_ms(T2), "Pets", None, None),
            (H11, "client9", "", "org1", "/pets/", HOST, 1 * n, unix_ms(T4), "Pets", None, None),
        ],
        ("ApiUserPerAppAgg_DAYS", "AGG_TIMESTAMP applicationId AGG_COUNT"): [(DAY, "client9", 1 * n), (DAY, "key1", 2 * n)],
        ("ApiResPathPerApp_HOURS", "AGG_TIMESTAMP applicationId apiResourceTemplate apiMethod AGG_COUNT"): [
            (H10, "key1", "/pets/{id}", "GET", 2 * n),
            (H11, "client9", "/pets/{id}", "GET", 1 * n),
        ],
        ("ApiPerDestinationAgg_HOURS", "AGG_TIMESTAMP destination apiHostname AGG_COUNT"): [(H10, "", HOST, 2 * n), (H11, "", HOST, 1 * n)],
        ("ApiVersionPerAppAgg_HOURS", "AGG_TIMESTAMP applicationId AGG_COUNT AGG_SUM_quotaExceededValue"): [
            (H10, "key1", 3 * n, 1 * n),
            (H11, "client9", 1 * n, 0),
        ],
        ("ApiExeTime_HOURS", "AGG_TIMESTAMP apiResourceTemplate AGG_COUNT AGG_SUM_responseTime AGG_SUM_serviceTime "
         "AGG_SUM_backendTime AGG_SUM_backendLatency AGG_SUM_securityLatency AGG_SUM_otherLatency"): [
            (H10, "/pets/{id}", 2 * n, 400 * n, 30 * n, 370 * n, 370 * n, None, None),
            (H11, "/pets/{id}", 1 * n, 50 * n, 10 * n, 40 * n, 40 * n, None, None),
        ],
        ("ApiUserBrowserAgg_DAYS", "AGG_TIMESTAMP operatingSystem browser apiCreator apiCreatorTenantDomain AGG_COUNT"): [
            (DAY, "Linux", "Firefox", "", "org1", 1 * n),
            (DAY, "Other", "Other", "", "org1", 1 * n),
            (DAY, "Windows", "Chrome", "", "org1", 1 * n),
        ],
        ("APIM_ReqCountAgg_HOURS", "AGG_TIMESTAMP applicationName apiName apiVersion AGG_SUM_successCount AGG_SUM_throttleCount"): [
            (H10, "alice", "Pets", "v1", 2 * n, 1 * n),
            (H11, "", "Pets", "v1", 1 * n, 0),
        ],
        ("ApiLastAccessSummary", "apiName apiCreator apiCreatorTenantDomain apiContext apiVersion applicationOwner lastAccessTime"): [
            ("Pets", "", "org1", "/pets/", "v1", None, unix_ms(T4)),
        ],
        ("GeoLocationAgg_DAYS", "AGG_TIMESTAMP country city totalCount username"): [(DAY, "US", "Boston", 2 * n, "alice")],
        ("ApiFaultyInvocationAgg_HOURS", "AGG_TIMESTAMP applicationId hostname AGG_COUNT requestTimestamp applicationConsumerKey"): [
            (H10, "key1", HOST, 1 * n, unix_ms(T2), "key1"),
        ],
    }  # fmt: skip


def check(db: Db, n: int) -> None:
    for (table, columns), expected in golden(n).items():
        got = [tuple(int(v) if isinstance(v, int) else v for v in r) for r in rows(db, table, columns)]
        assert got == expected, table


async def test_summary_tables_have_the_exact_rows(db: Db) -> None:
    await write(sink(db), SinkBatch("b1", records()))
    check(db, 1)
    assert db.count("ApiFaultyInvocationAgg_DAYS") == 1
    assert db.count("ApiExeTime_DAYS") == 1


async def test_redelivered_and_split_batches_count_once(db: Db) -> None:
    recs = records()
    await write(
        sink(db),
        SinkBatch("b1", recs),
        SinkBatch("b1", recs),  # redelivered
        SinkBatch("b2.0", recs[:2]),  # a split half landed, then the process died
        SinkBatch("b2", recs),  # the whole batch again: only the other half counts
        SinkBatch("b2.1", recs[2:]),  # the late other half: its ancestor is applied
    )
    check(db, 2)


async def test_retention_of_a_granularity(db: Db) -> None:
    old = Record(org_id="org1", api_id="api1", api_name="Pets", timestamp=datetime(2020, 1, 1, tzinfo=UTC), response_code=200)
    now = Record(org_id="org1", api_id="api1", api_name="Pets", timestamp=datetime.now(UTC), response_code=200)
    m: dict[str, Any] = {"rollups": [{"granularity": "hour", "retention_days": 30}, "day"]}
    await write(_with(db, m), SinkBatch("b1", [old, now]))
    assert db.count("ApiUserPerAppAgg_HOURS") == 2
    await write(_with(db, m))  # start prunes
    assert db.count("ApiUserPerAppAgg_HOURS") == 1
    assert db.count("ApiUserPerAppAgg_DAYS") == 2


def _with(db: Db, meta: dict[str, Any]) -> Wso2SummarySink:
    m = agg.Meta(**db.meta, mode="wso2_summary", **meta)
    return Wso2SummarySink("wso2", m, target_of(m), m.rollups, m.ledger_retention_days)
