"""The ``publish_interval`` setting of the aggregate pumps (``pump.delivery.publish`` does the
holding and flushing): minutes from 1 to 60, written ``5m``, ``90s``, ``1h`` or a number of
minutes; unset or 0 = every batch is written as it comes (the default)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

_TEXT = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(s|m|h|min)?\s*$")
_UNIT = {"s": 1, "m": 60, "min": 60, "h": 3600, None: 60}
LOWEST, HIGHEST = 60, 3600


def seconds(value: Any) -> float:
    """``5m`` → 300.0; a bare number means minutes; 0 / "" = off. Outside 1–60 minutes is an
    error naming the range."""
    if value in (None, "", 0, "0"):
        return 0.0
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 5m")
    if isinstance(value, (int, float)):
        total = float(value) * 60
    else:
        m = _TEXT.match(str(value))
        if not m:
            raise ValueError(f"{value!r} is not a duration; write it as 5m, 90s or 1h (1 to 60 minutes)")
        total = float(m.group(1)) * _UNIT[m.group(2)]
    if not LOWEST <= total <= HIGHEST:
        raise ValueError(f"{value!r} is outside 1 to 60 minutes (webMethods' publish interval range); use 1m … 60m, or 0 for every batch")
    return total


#: The ``publish_interval`` meta key of both aggregate pumps: seconds, from any spelling
#: :func:`seconds` accepts, with its one description.
PublishInterval = Annotated[
    float,
    BeforeValidator(seconds),
    Field(description="ours: write the in-memory aggregate every 1-60 minutes (5m) instead of every batch; 0 = every batch"),
]
