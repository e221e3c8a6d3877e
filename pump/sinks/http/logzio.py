"""``logzio``: Tyk's Logz.io pump as an HTTP batch — Logz.io's bulk listener over HTTPS.

Tyk's pump hands each record's document to Logz.io's Go sender, which queues it on disk
(``queue_dir``), and every ``drain_duration`` POSTs up to 3 MB of queued documents, one JSON
document a line, to ``<url>/?token=<token>``, dropping new records while the disk is fuller than
``disk_threshold`` percent (``check_disk_space``). Here the same documents (Tyk's fourteen fields,
:func:`pump.sinks.http.templates.logzio_event`) go to the same URL in requests of at most
``batch_max_bytes`` (3 MiB, as the sender's batches), sent when the batch is claimed.

What changes, and what ``pump validate`` warns about when the keys are set: there is no disk
queue, so ``queue_dir``, ``drain_duration``, ``disk_threshold`` and ``check_disk_space`` have no
effect. Records wait in Redis, claimed and not acknowledged, until Logz.io has answered 2xx; a
full disk never drops them; the pace is ``purge_delay``'s. Logz.io's 400 (a line it cannot parse)
dead-letters that one record instead of dropping the request; 401 (a wrong token) is retried
until the token is fixed instead of dropping the request.
"""

from __future__ import annotations

import logging
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator

from pump.redact import Secret, UrlStr
from pump.sinks.base import SinkContext, SinkMeta, SinkSpec
from pump.sinks.http.config import Meta as HttpMeta
from pump.sinks.http.config import check_url
from pump.sinks.http.encode import Options
from pump.sinks.http.sink import HttpSink, build_sink
from pump.sinks.kafka.config import go_duration_seconds

log = logging.getLogger(__name__)

DEFAULT_URL = "https://listener.logz.io:8071"
#: The Logz.io sender's largest request body (3 MB); Logz.io itself takes up to 10 MB.
MAX_BATCH_BYTES = 3 * 1024 * 1024


class Meta(SinkMeta):
    # --- Tyk's keys -------------------------------------------------------------------------------
    token: Secret = Field(description="Logz.io account token (sent as ?token=)")
    url: UrlStr = Field(DEFAULT_URL, description="listener URL; the default is Logz.io's US listener")
    queue_dir: str = Field("", description="accepted; no effect (no disk queue)")
    drain_duration: str = Field("3s", description="accepted; no effect (a Go duration, checked as Tyk does)")
    disk_threshold: int = Field(98, ge=0, le=100, description="accepted; no effect (percent, 0-100 as Tyk checks)")
    check_disk_space: bool = Field(True, description="accepted; no effect")
    # --- ours -------------------------------------------------------------------------------------
    log_type: str = Field("", description="Logz.io log type (&type=); empty = Logz.io's default")
    gzip: bool = Field(False, description="gzip request bodies (the listener accepts Content-Encoding: gzip)")
    batch_max_bytes: int = Field(MAX_BATCH_BYTES, ge=1024, le=10 << 20, description="body bytes per request before gzip")
    workers: int = Field(1, ge=1, le=64)
    connect_timeout: float = Field(10, gt=0, le=600)
    read_timeout: float = Field(10, gt=0, le=3600, description="seconds for Logz.io's answer (the sender's 10 s)")
    ssl_ca_file: str = ""

    @field_validator("token")
    @classmethod
    def _token(cls, v: SecretStr) -> SecretStr:
        if not v.get_secret_value():
            raise ValueError("token is required (Tyk refuses an empty one too); it is your Logz.io shipping token")
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        check_url(v or DEFAULT_URL)
        if urlsplit(v).query:
            raise ValueError("give the listener URL without a query; the token goes in token (and the type in log_type)")
        return v or DEFAULT_URL

    @field_validator("drain_duration")
    @classmethod
    def _drain(cls, v: str) -> str:
        go_duration_seconds(v or "3s")  # Tyk refuses to start on one it cannot parse
        return v

    @property
    def bulk_url(self) -> str:
        """``<url>/?token=…[&type=…]``, as Logz.io's sender builds it."""
        p = urlsplit(self.url)
        query = "token=" + quote(self.token.get_secret_value(), safe="")
        if self.log_type:
            query += "&type=" + quote(self.log_type, safe="")
        return urlunsplit((p.scheme, p.netloc, p.path.rstrip("/") + "/", query, ""))

    def to_http(self) -> HttpMeta:
        """The ``http`` settings this Logz.io pump amounts to."""
        return HttpMeta(
            url=self.bulk_url,
            format="logzio",
            gzip=self.gzip,
            batch_max_records=0,
            batch_max_bytes=self.batch_max_bytes,
            workers=self.workers,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            ssl_ca_file=self.ssl_ca_file,
        )


def build(ctx: SinkContext, meta: Meta) -> HttpSink:
    return build_sink(ctx.name, meta.to_http(), Options(), kind="logzio")


SPEC: SinkSpec[Meta] = SinkSpec(meta=Meta, build=build)

__all__ = ["SPEC", "Meta", "build"]
