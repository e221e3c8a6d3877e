"""The index template installed at start: typed mappings for Tyk's document and our extras.

Without a template, dynamic mapping makes every string ``text`` + ``keyword`` (ids become
analysed text), guesses numbers from the first value seen, and never finds a ``geo_point``.
The template fixes what each field is: ids and names ``keyword`` (exact filters and terms
aggregations), ``@timestamp`` a ``date``, sizes and latencies ``long``, the location a
``geo_point``. Long values are kept searchable up to sensible lengths (``ignore_above``) instead
of making a whole document fail on Lucene's 32 KB term limit. Base64 raw payloads are stored but
not indexed; decoded ones (``decode_base64``) are full-text ``text``.

Strings Tyk's document carries (``string_mapping``): Tyk installs no template, so Elasticsearch's
dynamic mapping makes each of them ``text`` with a ``keyword`` subfield (``ignore_above`` 256), and
Kibana objects built on Tyk's indices use ``api_id.keyword`` and friends. ``multi`` (default) keeps
our ``keyword`` field *and* adds that ``.keyword`` subfield, so exact filters and aggregations work
on both names; ``tyk`` is Tyk's dynamic mapping exactly (the field itself analysed ``text``, so
word-level matches such as ``api_name: users`` behave as on Tyk's indices); ``keyword`` is this
pump's earlier mapping without the subfield. Our own fields (``event_kind``, ``host``, latencies,
geo) are typed the same in every mode.

A composable template (``_index_template``, Elasticsearch 7.8+ and OpenSearch) is used where it
exists, the legacy ``_template`` API otherwise. The template only shapes indices created after it;
an existing index keeps its mapping.
"""

from __future__ import annotations

from typing import Any

_KW = {"type": "keyword", "ignore_above": 1024}
_URI = {"type": "keyword", "ignore_above": 4096}
#: What Elasticsearch's dynamic mapping gives a string subfield (and Tyk's indices have).
_KEYWORD_SUBFIELD = {"keyword": {"type": "keyword", "ignore_above": 256}}
_TYK_STRING = {"type": "text", "fields": _KEYWORD_SUBFIELD}

#: ``string_mapping`` values, default first.
STRING_MAPPINGS = ("multi", "tyk", "keyword")
#: The string fields of Tyk's own document (the raw payloads are handled apart).
TYK_STRING_FIELDS = (
    "http_method", "request_uri", "request_uri_full", "ip_address", "api_key", "api_version", "api_name", "api_id",
    "org_id", "oauth_id", "alias", "tags", "mcp_method", "mcp_primitive_type", "mcp_primitive_name", "user_agent",
)  # fmt: skip


def _string(mapping: dict[str, Any], mode: str) -> dict[str, Any]:
    if mode == "tyk":
        return _TYK_STRING
    if mode == "multi":
        return {**mapping, "fields": _KEYWORD_SUBFIELD}
    return mapping


def properties(extended: bool, decoded: bool, strings: str = "multi") -> dict[str, Any]:
    """Field mappings for the documents ``DocumentBuilder`` produces (``strings``: see above)."""
    if strings not in STRING_MAPPINGS:
        raise ValueError(f"string_mapping must be one of {', '.join(STRING_MAPPINGS)}")
    props: dict[str, Any] = {
        "@timestamp": {"type": "date"},
        "http_method": {"type": "keyword", "ignore_above": 64},
        "request_uri": _URI,
        "request_uri_full": _URI,
        "response_code": {"type": "integer"},
        # keyword, not ip: the gateway may send "" (Go's zero value) or "host:port" forms that an
        # ip field would refuse, dead-lettering an otherwise good record.
        "ip_address": {"type": "keyword", "ignore_above": 256},
        "api_key": _KW,
        "api_version": _KW,
        "api_name": _KW,
        "api_id": _KW,
        "org_id": _KW,
        "oauth_id": _KW,
        "request_time_ms": {"type": "long"},
        "alias": _KW,
        "content_length": {"type": "long"},
        "tags": _KW,
        "mcp_method": _KW,
        "mcp_primitive_type": _KW,
        "mcp_primitive_name": _KW,
        # extras (extra_fields)
        "event_kind": {"type": "keyword"},
        "host": _KW,
        "latency_total_ms": {"type": "long"},
        "latency_upstream_ms": {"type": "long"},
        "latency_gateway_ms": {"type": "long"},
        "geo_country_iso_code": {"type": "keyword", "ignore_above": 16},
        "geo_location": {"type": "geo_point"},
    }
    if extended:
        raw = {"type": "text"} if decoded else {"type": "text", "index": False}
        props["raw_request"] = _TYK_STRING if strings == "tyk" else raw
        props["raw_response"] = _TYK_STRING if strings == "tyk" else raw
        props["user_agent"] = _KW
    for name in TYK_STRING_FIELDS:
        if name in props:
            props[name] = _string(props[name], strings)
    return props


def mappings(extended: bool, decoded: bool, strings: str = "multi") -> dict[str, Any]:
    maps: dict[str, Any] = {"properties": properties(extended, decoded, strings)}
    if strings != "tyk":
        # Fields added by hand later (or by a newer pump) become keywords rather than text.
        dynamic = _string(_KW, strings)
        maps["dynamic_templates"] = [{"strings_as_keywords": {"match_mapping_type": "string", "mapping": dynamic}}]
    return maps


def composable(
    patterns: list[str], priority: int, settings: dict[str, Any], extended: bool, decoded: bool, strings: str = "multi"
) -> dict[str, Any]:
    """Body of ``PUT _index_template/<name>``."""
    template: dict[str, Any] = {"mappings": mappings(extended, decoded, strings)}
    if settings:
        template["settings"] = settings
    return {"index_patterns": patterns, "priority": priority, "template": template, "_meta": {"managed_by": "pump"}}


def legacy(
    patterns: list[str],
    order: int,
    settings: dict[str, Any],
    extended: bool,
    decoded: bool,
    doc_type: str | None,
    strings: str = "multi",
) -> dict[str, Any]:
    """Body of ``PUT _template/<name>`` (Elasticsearch 6.0–7.7); typed mappings before 7."""
    body: dict[str, Any] = {"index_patterns": patterns, "order": order}
    maps = mappings(extended, decoded, strings)
    body["mappings"] = {doc_type: maps} if doc_type else maps
    if settings:
        body["settings"] = settings
    return body
