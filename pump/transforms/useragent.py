"""Browser, operating system and device of a ``user_agent``, parsed with ``ua-parser``.

``ua-parser`` (PyPI) carries the uap-core regexes (``ua-parser-builtins``), the list browsers and
crawlers are kept up to date in. Parsing one string runs a few hundred regexes, but user agents
repeat — a gateway sees a handful of clients — so results are kept in an LRU cache; a batch of
thousands of records costs a few parses.

Used by the ``browser``/``os``/``device`` condition variables, the ``browsers``/``platforms``
aggregate dimensions (:mod:`pump.aggregate.extra`), and ``user_agent_fields`` (below).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

from pump.record import Record

#: Tag prefixes ``user_agent_fields`` adds (``ua-browser:Chrome``, ``ua-os:Windows``).
BROWSER_TAG, OS_TAG = "ua-browser:", "ua-os:"


class UserAgent(NamedTuple):
    """Families as uap-core names them (``Chrome``, ``Mac OS X``, ``iPhone``); ``Other`` when the
    string is not recognised; all empty for an empty ``user_agent``."""

    browser: str
    os: str
    device: str


_EMPTY = UserAgent("", "", "")


@lru_cache(maxsize=4096)
def parse_user_agent(text: str) -> UserAgent:
    """Parse one user agent (cached; see the module docstring)."""
    if not text:
        return _EMPTY
    from ua_parser import parse  # imported on first use: loading the regexes takes a moment

    result = parse(text)
    return UserAgent(
        result.user_agent.family if result.user_agent else "Other",
        result.os.family if result.os else "Other",
        result.device.family if result.device else "Other",
    )


def with_user_agent_fields(records: Sequence[Record]) -> list[Record]:
    """``user_agent_fields: true``: the browser and OS as two tags, on copies of the records.

    Tags, because every raw sink already stores them (CSV column, SQL column, Mongo and ES field)
    and none of Tyk's table or document shapes has room for a new field. Records without a user
    agent are passed through unchanged."""
    out: list[Record] = []
    for r in records:
        ua = parse_user_agent(r.user_agent)
        if not ua.browser:
            out.append(r)
            continue
        copy = r.copy()
        copy.tags = [*(r.tags or ()), BROWSER_TAG + ua.browser, OS_TAG + ua.os]
        out.append(copy)
    return out
