"""Tyk's flat message of a record: the twenty fields its Kafka and syslog pumps send. Pure code.

Both Tyk pumps build the same Go map (``timestamp``, ``method``, ``path`` … ``user_agent``,
``tags``) from a record; Kafka marshals it as JSON, syslog prints it with ``%s`` (or, with
``format: json``, marshals it too). One function, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pump import schema
from pump.gotime import rfc3339_nano
from pump.record import Record


def _message_source() -> str:
    values = ", ".join(
        f"{f.msg!r}: rfc3339_nano(r.timestamp_ns, r.tz)" if f.type == schema.TIME else f"{f.msg!r}: r.{f.attr}"
        for f in schema.columns("msg")
    )
    return f"def tyk_message(r):\n    return {{{values}}}\n"


#: Tyk's twenty fields of a record (the ``msg`` column of :data:`pump.schema.FIELDS`), by Tyk's
#: names, in table order (both pumps sort the keys); the timestamp as Go's RFC 3339 with
#: nanoseconds in the record's zone, ``tags`` as the record has them (None like a nil slice).
tyk_message: Callable[[Record], dict[str, Any]] = schema.compile_function("tyk_message", _message_source(), {"rfc3339_nano": rfc3339_nano})
