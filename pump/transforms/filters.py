"""``filters``: allow and deny lists by API id, org id and response code (deny wins)."""

from __future__ import annotations

from collections.abc import Callable

from pump.config.model import Filters
from pump.record import Record


def record_filter(f: Filters) -> Callable[[Record], bool] | None:
    """A predicate keeping the records a pump should receive, or None when nothing is filtered.

    Semantics of Tyk's ``AnalyticsFilters.ShouldFilter``: a record is dropped when its API, org or
    code is in a ``skip_`` list, or when an allow list is non-empty and does not contain it.
    """
    if f.is_empty():
        return None
    api_ids, org_ids, codes = frozenset(f.api_ids), frozenset(f.org_ids), frozenset(f.response_codes)
    skip_api, skip_org, skip_code = frozenset(f.skip_api_ids), frozenset(f.skip_org_ids), frozenset(f.skip_response_codes)

    def keep(r: Record) -> bool:
        if r.api_id in skip_api or r.org_id in skip_org or r.response_code in skip_code:
            return False
        if api_ids and r.api_id not in api_ids:
            return False
        if org_ids and r.org_id not in org_ids:
            return False
        return not (codes and r.response_code not in codes)

    return keep
