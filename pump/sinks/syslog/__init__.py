"""``syslog``: Tyk's syslog pump — one RFC 5424 message per record over UDP, TCP or TLS.

Modules: ``config`` (the ``meta`` model), ``message`` (Tyk's text or JSON, RFC 5424 header,
framing), ``sink`` (the writer; sockets in :mod:`pump.sinks.netio`). See docs/sinks/syslog.md.
"""

from __future__ import annotations

from pump.sinks.base import SinkContext
from pump.sinks.syslog.config import Meta
from pump.sinks.syslog.sink import SyslogSink, build_sink


def build(ctx: SinkContext, meta: Meta) -> SyslogSink:
    return build_sink(ctx.name, meta)


__all__ = ["Meta", "SyslogSink", "build"]
