"""Tyk's flat message of a record: the twenty fields its Kafka and syslog pumps send. Pure code.

Both Tyk pumps build the same Go map (``timestamp``, ``method``, ``path`` … ``user_agent``,
``tags``) from a record; Kafka marshals it as JSON, syslog prints it with ``%s`` (or, with
``format: json``, marshals it too). One function, so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from pump.record import Record
from pump.sinks.elasticsearch.document import timestamp_text


def tyk_message(r: Record) -> dict[str, Any]:
    """Tyk's twenty fields of a record, by Tyk's names; the timestamp as Go's RFC 3339 with
    nanoseconds in the record's zone, ``tags`` as the record has them (None like a nil slice)."""
    return {
        "timestamp": timestamp_text(r.timestamp_ns, r.tz),
        "method": r.method,
        "path": r.path,
        "raw_path": r.raw_path,
        "response_code": r.response_code,
        "alias": r.alias,
        "api_key": r.api_key,
        "api_version": r.api_version,
        "api_name": r.api_name,
        "api_id": r.api_id,
        "org_id": r.org_id,
        "oauth_id": r.oauth_id,
        "raw_request": r.raw_request,
        "request_time_ms": r.request_time,
        "raw_response": r.raw_response,
        "ip_address": r.ip_address,
        "host": r.host,
        "content_length": r.content_length,
        "user_agent": r.user_agent,
        "tags": r.tags,
    }
