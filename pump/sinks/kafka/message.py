"""What one record becomes on the topic: Tyk's Kafka message JSON, keyed by the record id. Pure code.

The value is the object Tyk's pump marshals (tyk-pump.md §4 Kafka): twenty fields of the record,
then the static ``meta_data`` keys over them. Go marshals a map with its keys sorted, so do we;
``tags`` is ``null`` when the record has none, like a nil Go slice. The timestamp is Go's
RFC 3339 with nanoseconds in the record's zone.

Tyk sends no key. We key by the record id (a hash of the gateway payload): a redelivered batch
produces the same keys, so a consumer — or a compacted topic — can drop the duplicates, and every
message of one record lands in the same partition.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from pump.record import Record
from pump.sinks.elasticsearch.document import timestamp_text
from pump.text import json_bytes


def message_fields(r: Record) -> dict[str, Any]:
    """Tyk's twenty fields of a record, by Tyk's names."""
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


class Encoder:
    """Key and value bytes of records, with the static ``meta_data`` fixed once."""

    def __init__(self, meta_data: Mapping[str, str], key_by_record_id: bool = True) -> None:
        self.meta_data = dict(meta_data)
        self.keyed = key_by_record_id

    def value(self, r: Record) -> bytes:
        doc = message_fields(r)
        if self.meta_data:
            doc.update(self.meta_data)
        return json_bytes(doc, option=orjson.OPT_SORT_KEYS)  # text that was not UTF-8 as U+FFFD

    def key(self, r: Record) -> bytes | None:
        return r.record_id.encode() if self.keyed and r.record_id else None
