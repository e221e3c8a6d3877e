"""``http``: analytics POSTed in batches to any HTTP endpoint — a webhook, a log collector, a SaaS
API — and Tyk's ``splunk`` and ``moesif`` pumps, which are such batches with a fixed shape.

Bodies are NDJSON, a JSON array, or a collector's template (Splunk HEC, Moesif events, Logz.io);
URL placeholders (``/authors/{api_id}/books``) route each record; auth is bearer, basic or an API
key header from a value, an environment variable or a file; TLS is verified by default; 429/5xx
are retried after ``Retry-After``, other 4xx isolate and dead-letter the refused record.
See docs/sinks/http.md.

Modules: ``config`` (the ``meta`` model), ``encode`` (documents, framing, cutting into requests),
``templates`` (Splunk and Logz.io documents), ``client`` (HTTP, TLS, auth, what an answer means),
``sink`` (the writer), ``splunk`` and ``moesif`` (Tyk's keys mapped onto it).
"""

from __future__ import annotations

from pump.sinks.base import SinkContext
from pump.sinks.http.config import Auth, Meta
from pump.sinks.http.sink import HttpSink, build_sink


def build(ctx: SinkContext, meta: Meta) -> HttpSink:
    return build_sink(ctx.name, meta)


__all__ = ["Auth", "HttpSink", "Meta", "build"]
