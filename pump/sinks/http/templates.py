"""Documents of the collector templates: a Splunk HEC event and a Logz.io log line, as Tyk's
``splunk`` and ``logzio`` pumps build them (tyk-pump.md §4). Pure code.

Splunk: ``{"time": <unix seconds>, "event": {…}}``, the event a Go map (so its keys are sorted)
of Tyk's default fields, or of ``fields``; ``obfuscate_api_keys`` turns the key into ``****``
plus its last ``obfuscate_api_keys_length`` characters; ``ignore_tag_prefix_list`` drops tags
(when ``tags`` is one of the fields). Logz.io: Tyk's fixed map of fourteen fields.
"""

from __future__ import annotations

from typing import Any

from pump.gotime import rfc3339_nano
from pump.record import Record
from pump.sinks.http.encode import Encoder, Options, go_float, go_json

#: Every field a Splunk event may carry (Tyk's ``mapping``).
SPLUNK_FIELDS = (
    "method", "host", "path", "raw_path", "content_length", "user_agent", "response_code", "api_key", "time_stamp",
    "api_version", "api_name", "api_id", "org_id", "oauth_id", "raw_request", "request_time", "raw_response",
    "ip_address", "geo", "network", "latency", "tags", "alias", "track_path",
)  # fmt: skip
#: The event's fields when ``fields`` is empty.
SPLUNK_DEFAULT_FIELDS = (
    "method", "path", "response_code", "api_key", "time_stamp", "api_version", "api_name", "api_id", "org_id",
    "oauth_id", "raw_request", "request_time", "raw_response", "ip_address",
)  # fmt: skip


def obfuscate(api_key: str, keep: int) -> str:
    """Tyk's ``obfuscate_api_keys``: ``****`` and the last ``keep`` characters, for keys longer
    than ``keep`` (shorter ones are left as they are, as in Tyk)."""
    if len(api_key) > keep:
        return "****" + (api_key[len(api_key) - keep :] if keep else "")
    return api_key


def filter_tags(tags: list[str] | None, prefixes: tuple[str, ...]) -> list[str] | None:
    """Tags not starting with any ignored prefix. (Tyk's loop removes while iterating and so
    keeps a tag that follows a removed one; here every matching tag goes.)"""
    if tags is None or not prefixes:
        return tags
    return [t for t in tags if not t.startswith(prefixes)]


def _geo(r: Record) -> dict[str, Any]:
    names = r.geo_city_names
    return {
        "country": {"iso_code": r.geo_country_iso_code},
        "city": {"geoname_id": r.geo_city_geoname_id, "names": {k: names[k] for k in sorted(names)} if names is not None else None},
        "location": {
            "latitude": go_float(r.geo_location_latitude),
            "longitude": go_float(r.geo_location_longitude),
            "time_zone": r.geo_location_time_zone,
        },
    }


def _splunk_value(r: Record, name: str, options: Options) -> Any:
    if name == "api_key":
        return obfuscate(r.api_key, options.obfuscate_api_keys_length) if options.obfuscate_api_keys else r.api_key
    if name == "time_stamp":
        return rfc3339_nano(r.timestamp_ns, r.tz)
    if name == "geo":
        return _geo(r)
    if name == "network":
        return {
            "open_connections": r.network_open_connections,
            "closed_connections": r.network_closed_connections,
            "bytes_in": r.network_bytes_in,
            "bytes_out": r.network_bytes_out,
        }
    if name == "latency":
        return {"total": r.latency_total, "upstream": r.latency_upstream, "gateway": r.latency_gateway}
    if name == "tags":
        return filter_tags(r.tags, options.ignore_tag_prefix_list)
    return getattr(r, name)


def splunk_encoder(options: Options) -> Encoder:
    """One HEC event per record. The event is a Go map: its keys are written sorted."""
    names = tuple(sorted(set(options.fields or SPLUNK_DEFAULT_FIELDS)))

    def encode(r: Record) -> bytes:
        event = {name: _splunk_value(r, name, options) for name in names}
        return go_json({"time": r.timestamp_ns // 1_000_000_000, "event": event})

    return encode


def logzio_event(r: Record) -> bytes:
    """Tyk's Logz.io document (a Go map: keys sorted)."""
    return go_json(
        {
            "@timestamp": rfc3339_nano(r.timestamp_ns, r.tz),
            "api_id": r.api_id,
            "api_key": r.api_key,
            "api_name": r.api_name,
            "api_version": r.api_version,
            "http_method": r.method,
            "ip_address": r.ip_address,
            "oauth_id": r.oauth_id,
            "org_id": r.org_id,
            "raw_request": r.raw_request,
            "raw_response": r.raw_response,
            "request_time_ms": r.request_time,
            "request_uri": r.path,
            "response_code": r.response_code,
        }
    )
