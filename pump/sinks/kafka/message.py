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

import orjson

from pump.record import Record
from pump.sinks.message import tyk_message
from pump.text import json_bytes


class Encoder:
    """Key and value bytes of records, with the static ``meta_data`` fixed once."""

    def __init__(self, meta_data: Mapping[str, str], key_by_record_id: bool = True) -> None:
        self.meta_data = dict(meta_data)
        self.keyed = key_by_record_id

    def value(self, r: Record) -> bytes:
        doc = tyk_message(r)
        if self.meta_data:
            doc.update(self.meta_data)
        return json_bytes(doc, option=orjson.OPT_SORT_KEYS)  # text that was not UTF-8 as U+FFFD

    def key(self, r: Record) -> bytes | None:
        return r.record_id.encode() if self.keyed and r.record_id else None
