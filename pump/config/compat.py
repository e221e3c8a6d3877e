"""Tyk ``meta`` keys this pump accepts but honours differently on purpose, in one table.

A Tyk ``pump.conf`` loads unchanged, but a few keys cannot mean here what they mean in Tyk (the
thing they tune does not exist, or the behaviour was changed to stop losing data). ``pump
validate`` and start-up print a warning for each such key a config sets to something other than
Tyk's default, saying what changes, so nobody relies on a setting silently. The same table is the
"different on purpose" column of docs/tyk-compatibility.md (a unit test keeps them in step).

Keys are dotted paths into ``meta``; a sink's own ``SinkMeta.compat_warnings()`` can add more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

#: :class:`When` value: the key changes behaviour whatever it is set to.
PRESENT: Any = object()
_NON_DEFAULT: Any = object()


@dataclass(frozen=True)
class When:
    """A key that changes behaviour when set explicitly to ``value`` (even Tyk's default), or
    to anything (:data:`PRESENT`)."""

    value: Any
    why: str


_MONGO: dict[str, str | When] = {"driver": "no effect: one Python driver (pymongo) serves every server type"}
_SQL: dict[str, str | When] = {
    "log_level": "no effect: SQL errors are logged through the pump's own log_level",
    "mysql.default_string_size": "no effect: MySQL column types are fixed (docs/sinks/sql.md, MySQL and MariaDB)",
    "mysql.disable_datetime_precision": "no effect: MySQL time columns are always DATETIME(6)",
    "mysql.dont_support_rename_index": "no effect: indexes are never renamed",
    "mysql.dont_support_rename_column": "no effect: columns are never renamed",
    "mysql.skip_initialize_with_version": "no effect: the server version is not needed",
}
_SELF_HEALING = {
    "enable_aggregate_self_healing": "only the orgs not yet written are aggregated again into the smaller documents "
    "(Tyk re-runs the whole batch and counts the written orgs twice)"
}
_SQL_IGNORE = {"ignore_aggregations": "takes effect in SQL (Tyk accepts it but ignores it for SQL)"}
_MOESIF_QUEUE = "no effect: there is no background queue; each batch is sent before it is acknowledged"

_LOGZIO_NO_QUEUE = "accepted for Tyk compatibility; there is no disk queue here: records wait in Redis, claimed, until Logz.io answers 2xx"
#: Tyk's keys that configure the Logz.io sender's disk queue, and what happens instead.
_LOGZIO: dict[str, str | When] = {
    "queue_dir": When(PRESENT, f"{_LOGZIO_NO_QUEUE}; nothing is written to this directory"),
    "drain_duration": When(PRESENT, f"{_LOGZIO_NO_QUEUE}; each batch is sent as soon as it is claimed (purge_delay sets the pace)"),
    "disk_threshold": When(PRESENT, f"{_LOGZIO_NO_QUEUE}, so no record is ever dropped for a full disk"),
    "check_disk_space": When(PRESENT, f"{_LOGZIO_NO_QUEUE}, so no record is ever dropped for a full disk"),
}

#: canonical pump type → dotted meta key → what changes compared with Tyk.
DIFFERENT_ON_PURPOSE: dict[str, dict[str, str | When]] = {
    "logzio": _LOGZIO,
    "elasticsearch": {
        "use_sniffing": "no effect: nodes are not discovered; list every node in elasticsearch_url (requests rotate and fail over)",
        "rolling_index": "the -YYYY.MM.DD suffix is each record's own date, not the wall clock at write time",
        "bulk_config.flush_interval": "no effect: nothing is buffered; a batch is acknowledged only after the server answered",
        "version": "the version the server reports wins (Elasticsearch < 7 gets _type; others never)",
        "use_ssl": "TLS follows the URL scheme (https://), and the ssl_* settings apply whenever TLS is used",
    },
    "mongo": _MONGO,
    "mongo-pump-selective": {
        **_MONGO,
        "max_document_size_bytes": When(PRESENT, "a larger record is dead-lettered with the reason (Tyk drops it silently)"),
    },
    "mongo-pump-aggregate": {**_MONGO, **_SELF_HEALING},
    "mongo-graph": _MONGO,
    "mongo-mcp": _MONGO,
    "mongo-mcp-aggregate": {**_MONGO, **_SELF_HEALING},
    "sql": _SQL,
    "sql_aggregate": {**_SQL, **_SQL_IGNORE},
    "sql-graph": _SQL,
    "sql-graph-aggregate": _SQL,
    "sql-mcp": _SQL,
    "sql-mcp-aggregate": _SQL,
    "splunk": {"max_retries": "no effect: the delivery layer retries failed batches (delivery.max_attempts, forever by default)"},
    "moesif": {
        "enable_bulk": When(False, "events are sent in batches of bulk_config.batch_size anyway (Tyk: one request per event)"),
        "bulk_config.event_queue_size": _MOESIF_QUEUE,
        "bulk_config.timer_wake_up_seconds": _MOESIF_QUEUE,
    },
    "kafka": {"timeout": "bounds connections and requests only; how long a message may wait for the broker is delivery_timeout"},
    "prometheus": {
        "custom_metrics[].buckets": "takes effect (Tyk always uses its default buckets)",
        "custom_metrics[].obfuscate_api_keys_length": "takes effect (Tyk always keeps the last 4 characters)",
    },
    "dogstatsd": {"buffered": When(False, "lines are packed into datagrams anyway (Tyk: one datagram per metric); receivers parse both")},
    "syslog": {
        "transport": When(
            PRESENT,
            "RFC 5424 messages (Tyk: Go log/syslog's BSD-style header); tcp/tls use octet counting "
            "(framing: lf for newline-terminated), and tls works (Tyk fails at start)",
        )
    },
}


#: Top-level ``pump.conf`` keys that take effect here where Tyk ignores them (those with no effect
#: here are ``NO_EFFECT`` in pump/config/load.py).
TOP_LEVEL_DIFFERENT: dict[str, str] = {
    "omit_detailed_recording": "takes effect: raw_request and raw_response are dropped for every pump (Tyk documents the "
    "top-level key but its code ignores it; set it per pump to keep Tyk's behaviour)",
}


def top_level_warnings(data: dict[str, Any]) -> list[str]:
    """Warnings for :data:`TOP_LEVEL_DIFFERENT` keys a raw config sets (truthy)."""
    return [f"{key}: {why}" for key, why in TOP_LEVEL_DIFFERENT.items() if data.get(key)]


def tyk_key_warnings(type_name: str, meta: BaseModel) -> list[str]:
    """``"<key>: <what changes>"`` for each key of the table that ``meta`` sets: to a value other
    than its default (a Tyk config spelling out Tyk's default changes nothing), or as the entry's
    :class:`When` says. ``name[]`` in a path looks into every element of the list ``name``."""
    out: list[str] = []
    for path, entry in DIFFERENT_ON_PURPOSE.get(type_name, {}).items():
        trigger, why = (entry.value, entry.why) if isinstance(entry, When) else (_NON_DEFAULT, entry)
        if _matches(meta, path.split("."), trigger):
            out.append(f"{path}: {why}")
    return out


def _matches(model: Any, parts: list[str], trigger: Any) -> bool:
    name, many = parts[0].removesuffix("[]"), parts[0].endswith("[]")
    if not isinstance(model, BaseModel) or name not in model.model_fields_set:
        return False
    value = getattr(model, name)
    if many:
        return isinstance(value, list) and any(_matches(item, parts[1:], trigger) for item in value)
    if len(parts) > 1:
        return _matches(value, parts[1:], trigger)
    if trigger is PRESENT:
        return True
    if trigger is _NON_DEFAULT:
        return bool(value != type(model).model_fields[name].get_default(call_default_factory=True))
    return bool(value == trigger)
