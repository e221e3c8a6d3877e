"""``elasticsearch``: Tyk's Elasticsearch pump for Elasticsearch 7/8/9 and OpenSearch 1/2.

Documents are Tyk's (same fields), bulk-created with a stable ``_id`` so redelivery never
duplicates; rolling indices follow the record's date; an index template types the fields.
See docs/sinks/elasticsearch.md for settings, differences from Tyk and the verified versions.

Modules: ``config`` (the ``meta`` model), ``document`` (index/id/document of a record),
``tykid`` (Tyk's murmur3 ``generate_id``), ``bulk`` (NDJSON and response classification),
``template`` (index template), ``client`` (HTTP, failover, auth, TLS), ``sink`` (the writer).
"""

from __future__ import annotations

from pump.sinks.base import SinkContext, SinkSpec
from pump.sinks.elasticsearch.config import BulkConfig, Meta
from pump.sinks.elasticsearch.sink import ElasticsearchSink, build_sink


def build(ctx: SinkContext, meta: Meta) -> ElasticsearchSink:
    return build_sink(ctx.name, meta)


SPEC = SinkSpec(meta=Meta, build=build)

__all__ = ["SPEC", "BulkConfig", "ElasticsearchSink", "Meta", "build"]
