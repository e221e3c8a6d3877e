"""User-agent dimensions (issue 13 item 5): browser/OS of known user agents, the cache, the
``browsers``/``platforms`` aggregate dimensions and the opt-in ``user_agent_fields`` tags."""

from __future__ import annotations

import pytest

from pump.aggregate import aggregate_records, build_rows
from pump.config.model import Config, PumpConfig
from pump.transforms import build_view
from pump.transforms.useragent import parse_user_agent
from tests.helpers import make_record

CHROME_WIN = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
SAFARI_MAC = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15"
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
IPHONE_TAIL = "Version/17.2 Mobile/15E148 Safari/604.1"
SAFARI_IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) " + IPHONE_TAIL
CHROME_ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36"
)
EDGE_WIN = CHROME_WIN + " Edg/120.0.2210.91"


@pytest.mark.parametrize(
    ("user_agent", "browser", "os", "device"),
    [
        (CHROME_WIN, "Chrome", "Windows", "Other"),
        (SAFARI_MAC, "Safari", "Mac OS X", "Mac"),
        (FIREFOX_LINUX, "Firefox", "Linux", "Other"),
        (SAFARI_IPHONE, "Mobile Safari", "iOS", "iPhone"),
        (CHROME_ANDROID, "Chrome Mobile", "Android", "Pixel 8"),
        (EDGE_WIN, "Edge", "Windows", "Other"),
        ("curl/8.4.0", "curl", "Other", "Other"),
        ("python-requests/2.31.0", "Python Requests", "Other", "Other"),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "Googlebot", "Other", "Spider"),
        ("something odd", "Other", "Other", "Other"),
        ("", "", "", ""),
    ],
)
def test_known_user_agents(user_agent: str, browser: str, os: str, device: str) -> None:
    assert tuple(parse_user_agent(user_agent)) == (browser, os, device)


def test_repeated_user_agents_are_parsed_once() -> None:
    ua = FIREFOX_LINUX + " unique-for-the-cache-test"
    before = parse_user_agent.cache_info()
    for _ in range(100):
        parse_user_agent(ua)
    after = parse_user_agent.cache_info()
    assert after.misses - before.misses == 1
    assert after.hits - before.hits == 99


BATCH = [
    make_record(user_agent=CHROME_WIN),
    make_record(user_agent=CHROME_WIN, response_code=500),
    make_record(user_agent=EDGE_WIN),
    make_record(user_agent=SAFARI_IPHONE),
    make_record(user_agent=""),
]


def test_browser_and_platform_dimensions() -> None:
    agg = next(iter(aggregate_records(BATCH, extra_dimensions=["platforms", "browsers"]).values()))
    assert list(agg.extra) == ["browsers", "platforms"]  # fixed order, whatever the config's
    assert {k: (c.hits, c.error_total) for k, c in agg.extra["browsers"].items()} == {
        "Chrome": (2, 1),
        "Edge": (1, 0),
        "Mobile Safari": (1, 0),
    }
    assert {k: c.hits for k, c in agg.extra["platforms"].items()} == {"Windows": 3, "iOS": 1}
    (rows,) = build_rows(BATCH, extra_dimensions=["browsers"]).values()
    assert sorted((r.dimension_value, r.counter_hits) for r in rows if r.dimension == "browsers") == [
        ("Chrome", 2),
        ("Edge", 1),
        ("Mobile Safari", 1),
    ]


def test_user_agent_fields_are_opt_in_tags_on_copies() -> None:
    on = PumpConfig(type="csv", user_agent_fields=True)
    off = PumpConfig(type="csv")
    config = Config(pumps={"on": on, "off": off})
    out = build_view(on, config)(BATCH)
    assert out[0].tags == ["key-00000000", "ua-browser:Chrome", "ua-os:Windows"]
    assert out[3].tags == ["key-00000000", "ua-browser:Mobile Safari", "ua-os:iOS"]
    assert out[4] is BATCH[4]  # no user agent: nothing to add, no copy
    assert BATCH[0].tags == ["key-00000000"]
    assert build_view(off, config)(BATCH) is BATCH
