"""Field rules: ``omit_detailed_recording``, ``max_record_size``, ``ignore_fields`` and the
``raw_request_decoded``/``raw_response_decoded`` switches.

Unlike Tyk, the top-level ``omit_detailed_recording`` works (Tyk passes it to a function that
ignores it, tyk-pump.md §10); a pump-level ``true`` also works, as in Tyk.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

from pump.config.model import Config, PumpConfig
from pump.gotime import ZERO_TIME
from pump.record import DEFAULTS, JSON_GROUPS, Record

Rule = Callable[[Record], Record]


def truncate_utf8(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` UTF-8 bytes without splitting a character.

    Tyk cuts bytes (which can leave half a character); raw fields are base64, so for them the
    two agree byte for byte."""
    if len(text) <= limit and text.isascii():
        return text
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore")


def decode_b64(text: str) -> str:
    """Base64 → text for ``raw_*_decoded``; a value that is not base64 is kept as it is."""
    try:
        return base64.b64decode(text, validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return text


def field_rules(pump: PumpConfig, config: Config) -> Rule | None:
    """One function applying every field rule of a pump to a copy of a record, or None."""
    omit = pump.omit_detailed_recording or config.omit_detailed_recording
    limit = pump.max_record_size or config.max_record_size
    ignored = [name for field in pump.ignore_fields for name in JSON_GROUPS.get(field, ())]
    dec_req, dec_resp = pump.raw_request_decoded, pump.raw_response_decoded
    if not (omit or limit or ignored or dec_req or dec_resp):
        return None

    def apply(r: Record) -> Record:
        r = r.copy()
        if omit:
            r.raw_request = r.raw_response = ""
        elif limit:
            r.raw_request = truncate_utf8(r.raw_request, limit)
            r.raw_response = truncate_utf8(r.raw_response, limit)
        for name in ignored:
            if name in ("timestamp", "expire_at"):
                setattr(r, name, ZERO_TIME)  # Go's zero time, what json:"-"-less zeroing gives
            else:
                setattr(r, name, DEFAULTS[name])
        if dec_req:
            r.raw_request = decode_b64(r.raw_request)
        if dec_resp:
            r.raw_response = decode_b64(r.raw_response)
        return r

    return apply
