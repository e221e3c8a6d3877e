"""The SQL pumps: ``sql`` (raw records), ``sql_aggregate`` and the uptime ``sql`` pump
(tyk-pump.md §3.5, §4), on PostgreSQL (psycopg 3, async), MySQL/MariaDB (PyMySQL, ``mysql``) or SQLite (stdlib ``sqlite3`` in a
worker thread).

Modules, one concern each:

* ``config`` — :class:`SqlMeta` (Tyk's ``SQLConf`` keys, validated) and :class:`Target`, where to
  connect with a description that never contains the password;
* ``connect`` — the PostgreSQL pool and the SQLite file; ``errors`` — driver exceptions → the
  pump's delivery errors; ``values`` — timestamps, text and COPY fields as written;
* ``schema`` — table names, shapes, creation and migration; ``backend`` — the connection side
  every SQL sink shares; ``ledger`` — applied batch ids, for exactly-once aggregates;
* ``raw``, ``aggregate`` (with ``statements``, its SQL), ``uptime`` — the sinks;
  ``summary`` — ``sql_aggregate`` with our ``rollups`` (``rollups``), ``publish_interval``
  (``publish``) and ``mode: wso2_summary`` (``wso2``);
  ``report`` — a short summary of what a database holds (the demo prints it).

See docs/sinks/sql.md for settings, types and the differences from Tyk.
"""

from __future__ import annotations

from pump.sinks.base import SinkSpec
from pump.sinks.sql import aggregate, raw, summary, uptime

#: ``sql``; also the uptime pump of ``uptime_type: sql``.
RAW = SinkSpec(meta=raw.Meta, build=raw.build, uptime=uptime.build_uptime, uptime_meta=uptime.uptime_meta)
#: ``sql_aggregate``.
AGGREGATE = SinkSpec(meta=aggregate.Meta, build=summary.build)
