"""Which path a per-path statistic is kept under: Tyk's track-path rule, and path templating.

Tyk counts a request under its own path only when the API tracks that endpoint (the gateway's
"track endpoint" plugin sets ``TrackPath``) or the pump sets ``track_all_paths``; the aggregate
pumps and the ``prometheus`` pump share that rule (:func:`tracked`). Tracking every raw path is
unbounded — ``/users/1``, ``/users/2``… — so :func:`template_path` collapses the segments that are
identifiers (numbers, UUIDs, long hex ids such as Mongo ObjectIds) into ``{id}`` and ``{uuid}``,
the templates an API definition would use.
"""

from __future__ import annotations

import re
from functools import lru_cache

from pump.record import Record

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
#: Hex ids of 16+ characters with at least one digit (ObjectIds, hashes), not words like "deadbeefcafebabe".
_HEX_ID = re.compile(r"^(?=[^0-9]*[0-9])[0-9a-fA-F]{16,}$")
_NUMBER = re.compile(r"^[0-9]+$")


def tracked(record: Record, track_all_paths: bool) -> bool:
    """Tyk's rule: a record's path counts as itself only if its endpoint is tracked."""
    return track_all_paths or record.track_path


@lru_cache(maxsize=65536)
def template_path(path: str) -> str:
    """``/users/42/orders/6f1c…-…`` → ``/users/{id}/orders/{uuid}``; the query string is dropped."""
    path = path.split("?", 1)[0]
    parts = path.split("/")
    changed = False
    for i, seg in enumerate(parts):
        if not seg or seg.isalpha():
            continue
        if _NUMBER.match(seg) or _HEX_ID.match(seg):
            parts[i] = "{id}"
            changed = True
        elif _UUID.match(seg):
            parts[i] = "{uuid}"
            changed = True
    return "/".join(parts) if changed else path
