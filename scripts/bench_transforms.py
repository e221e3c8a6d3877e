"""Bench rows of the per-pump views of issue 13: conditions, masking, user-agent dimensions.

End to end (``scripts/bench --sinks dummy,conditions,masking``): the ``dummy`` pump with the option
on, so ``vs dummy`` is the cost of the option with everything else equal.

In process (``scripts/bench --sinks views``): the view function alone over the decoded batch, in
chunks of 5000 records as a pump sees them — ``view: none`` (the ceiling), then each option on.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CONDITIONS: dict[str, Any] = {
    "type": "and",
    "rules": [
        {"variable": "response_code", "operator": ">=", "value": 200},
        {"variable": "path", "operator": "matches", "value": "^/[a-z]"},
        {"variable": "method", "operator": "in", "value": ["GET", "POST", "PUT", "DELETE"]},
        {"variable": "event_kind", "operator": "not equals", "value": "throttled"},
    ],
}
MASK: dict[str, Any] = {
    "fields": {"ip_address": "IP", "api_key": "OBFUSCATE", "alias": "EMAIL", "oauth_id": "STRING"},
    "request_headers": ["Authorization", "Cookie"],
    "response_headers": ["Set-Cookie"],
}


def _dummy(**options: Any) -> Callable[[Path, Any], dict[str, Any]]:
    return lambda workdir, start_server: {"dummy": {"type": "dummy", **options}}


ROWS = {
    "conditions": _dummy(conditions=CONDITIONS),
    "masking": _dummy(mask=MASK),
    "conditions+masking": _dummy(conditions=CONDITIONS, mask=MASK),
}


def view_rows(payloads: list[bytes], chunk: int = 5000) -> list[tuple[str, float, None, float]]:
    """``(row, records/s, None, seconds)`` of each view over the decoded payloads."""
    from pump.config.model import Config, PumpConfig
    from pump.decode import msgpack as mp
    from pump.transforms import build_view
    from pump.transforms.useragent import parse_user_agent

    records = [mp.decode_record(p) for p in payloads]
    batches = [records[i : i + chunk] for i in range(0, len(records), chunk)]
    options: dict[str, dict[str, Any]] = {
        "view: none": {},
        "view: conditions": {"conditions": CONDITIONS},
        "view: masking": {"mask": MASK},
        "view: user_agent_fields": {"user_agent_fields": True},
    }
    rows: list[tuple[str, float, None, float]] = []
    for name, opts in options.items():
        pump = PumpConfig(type="dummy", **opts)
        view = build_view(pump, Config(pumps={"x": pump}))
        parse_user_agent.cache_clear()
        gc.collect()
        t = time.perf_counter()
        for batch in batches:
            view(batch)
        elapsed = max(time.perf_counter() - t, 1e-9)
        rows.append((name, len(records) / elapsed, None, elapsed))
    return rows
