"""``splunk``: Tyk's Splunk pump — HEC events POSTed to ``<collector>/services/collector/event/1.0``.

Every key of Tyk's ``SplunkPumpConfig`` means what it means there: the path of ``collector_url``
is replaced by HEC's event endpoint (Tyk does the same), the token goes in
``Authorization: Splunk <token>``, ``enable_batch`` sends the records of a batch concatenated in
requests of at most ``batch_max_content_length`` bytes (else one request per record, as Tyk),
and the event is Tyk's (``fields``, ``obfuscate_api_keys``, ``ignore_tag_prefix_list``).

Where we differ: retries are the delivery layer's (forever by default, with backoff, the records
kept in Redis), so ``max_retries`` has no effect; a 400 from HEC dead-letters the one record it
refuses instead of failing the purge; every tag with an ignored prefix is dropped (Tyk's loop
keeps one that follows a removed tag).
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator

from pump.redact import Secret, UrlStr
from pump.sinks.base import SinkContext, SinkMeta, SinkSpec
from pump.sinks.http.config import Auth, check_url
from pump.sinks.http.config import Meta as HttpMeta
from pump.sinks.http.encode import Options
from pump.sinks.http.formats import check_fields
from pump.sinks.http.sink import HttpSink, build_sink

log = logging.getLogger(__name__)

HEC_PATH = "/services/collector/event/1.0"
#: Splunk's own default ``max_content_length`` (~800 MB), Tyk's default for batches.
MAX_CONTENT_LENGTH = 838860800


class Meta(SinkMeta):
    # --- Tyk's keys -------------------------------------------------------------------------------
    collector_token: Secret = Field(description="HEC token")
    collector_url: UrlStr = Field(description="e.g. https://splunk:8088/services/collector/event (the path is replaced)")
    ssl_insecure_skip_verify: bool = False
    ssl_cert_file: str = ""
    ssl_key_file: str = ""
    ssl_ca_file: str = ""
    ssl_server_name: str = ""
    obfuscate_api_keys: bool = False
    obfuscate_api_keys_length: int = Field(0, ge=0)
    fields: list[str] = Field(default_factory=list, description="event fields; empty = Tyk's default fourteen")
    ignore_tag_prefix_list: list[str] = Field(default_factory=list)
    enable_batch: bool = False
    batch_max_content_length: int = Field(0, ge=0, le=1 << 31, description="bytes per batched request; 0 = 838860800")
    max_retries: int = Field(0, ge=0, description="accepted; no effect (the delivery layer retries)")
    # --- ours -------------------------------------------------------------------------------------
    gzip: bool = Field(False, description="gzip request bodies (HEC accepts Content-Encoding: gzip)")
    workers: int = Field(1, ge=1, le=64, description="requests in flight at once within one batch")
    connect_timeout: float = Field(10, gt=0, le=600)
    read_timeout: float = Field(30, gt=0, le=3600)

    @field_validator("collector_token")
    @classmethod
    def _token(cls, v: SecretStr) -> SecretStr:
        if not v.get_secret_value():
            raise ValueError("the HEC token is required (Tyk refuses an empty one too)")
        return v

    @field_validator("collector_url")
    @classmethod
    def _url(cls, v: str) -> str:
        check_url(v)
        return v

    @field_validator("fields")
    @classmethod
    def _fields(cls, v: list[str]) -> list[str]:
        check_fields("splunk", v)
        return v

    @property
    def event_url(self) -> str:
        """``collector_url`` with HEC's event path, its query kept (Tyk sets ``u.Path`` only)."""
        p = urlsplit(self.collector_url)
        return urlunsplit((p.scheme, p.netloc, HEC_PATH, p.query, ""))

    def to_http(self) -> HttpMeta:
        """The ``http`` settings this Splunk pump amounts to."""
        batched = self.enable_batch
        return HttpMeta(
            url=self.event_url,
            format="splunk",
            auth=Auth(type="api_key", header="Authorization", prefix="Splunk ", token=self.collector_token),
            gzip=self.gzip,
            ssl_ca_file=self.ssl_ca_file,
            ssl_cert_file=self.ssl_cert_file,
            ssl_key_file=self.ssl_key_file,
            ssl_insecure_skip_verify=self.ssl_insecure_skip_verify,
            ssl_server_name=self.ssl_server_name,
            batch_max_records=0 if batched else 1,
            batch_max_bytes=(self.batch_max_content_length or MAX_CONTENT_LENGTH) if batched else 0,
            workers=self.workers,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
        )

    def options(self) -> Options:
        return Options(
            fields=tuple(self.fields),
            obfuscate_api_keys=self.obfuscate_api_keys,
            obfuscate_api_keys_length=self.obfuscate_api_keys_length,
            ignore_tag_prefix_list=tuple(self.ignore_tag_prefix_list),
        )


def build(ctx: SinkContext, meta: Meta) -> HttpSink:
    if meta.max_retries:
        log.info("max_retries has no effect: the delivery layer retries (see delivery.max_attempts).", extra={"pump": ctx.name})
    if not meta.enable_batch:
        log.info("enable_batch is off: one HEC request per record, as in Tyk; enable_batch: true is much faster.", extra={"pump": ctx.name})
    return build_sink(ctx.name, meta.to_http(), meta.options(), kind="splunk")


SPEC = SinkSpec(meta=Meta, build=build)
