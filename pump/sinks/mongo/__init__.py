"""The Mongo pumps: ``mongo`` (raw records), ``mongo-pump-selective`` (a collection per org),
``mongo-pump-aggregate`` and the uptime ``mongo`` pump (tyk-pump.md §4 "Mongo family"). All take
Tyk's ``BaseMongoConf`` keys and talk to the server through one pymongo ``AsyncMongoClient`` each.

Modules, one concern each:

* ``config`` — the shared ``meta`` keys, validated, and their pymongo options;
* ``documents`` — records as Tyk's documents, with a deterministic ``_id``;
* ``client`` — connect, ping, indexes, capped collections, idempotent unordered inserts;
* ``errors`` — pymongo exceptions → the pump's delivery errors;
* ``raw``, ``selective``, ``aggregate`` (with ``upsert``, its exactly-once two-step write),
  ``uptime`` — the sinks.

See docs/sinks/mongo.md for settings and the differences from Tyk.
"""

from __future__ import annotations

from pump.sinks.base import SinkSpec
from pump.sinks.mongo import aggregate, raw, selective, uptime

#: ``mongo``; also the uptime pump of ``uptime_type: mongo``.
RAW = SinkSpec(meta=raw.Meta, build=raw.build, uptime=uptime.build_uptime)
#: ``mongo-pump-selective``.
SELECTIVE = SinkSpec(meta=selective.Meta, build=selective.build)
#: ``mongo-pump-aggregate``.
AGGREGATE = SinkSpec(meta=aggregate.Meta, build=aggregate.build)
