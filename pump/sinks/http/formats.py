"""The encoder of each ``format`` of the http pump, and the fields each format's document has.

Kept apart from :mod:`pump.sinks.http.encode` (the shared pure helpers) so that the collector
templates and Moesif's events can use those helpers without the helpers importing them back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pump.sinks.http import templates
from pump.sinks.http.encode import RECORD_KEYS, Encoder, Options, record_encoder
from pump.sinks.http.moesif_events import MoesifOptions, event_encoder
from pump.sinks.http.templates import SPLUNK_FIELDS


def check_fields(fmt: str, fields: Sequence[str]) -> None:
    """Refuse ``fields`` the format's documents do not have (a typo would silently drop data)."""
    if not fields:
        return
    if fmt in ("ndjson", "json-array"):
        known: Iterable[str] = RECORD_KEYS
    elif fmt == "splunk":
        known = SPLUNK_FIELDS
    else:
        raise ValueError(f"fields: the {fmt} format has a fixed document; remove fields")
    unknown = [f for f in fields if f not in known]
    if unknown:
        raise ValueError(f"fields: {', '.join(map(repr, unknown))} not in the {fmt} document; use any of {', '.join(known)}")


def encoder(fmt: str, options: Options) -> Encoder:
    """The function turning one record into its JSON bytes for ``fmt``."""
    if fmt in ("ndjson", "json-array"):
        return record_encoder(options.fields)
    if fmt == "splunk":
        return templates.splunk_encoder(options)
    if fmt == "logzio":
        return templates.logzio_event
    if fmt == "moesif":
        return event_encoder(options.moesif or MoesifOptions())
    raise ValueError(f"unknown format {fmt!r}")
