"""``moesif``: Tyk's Moesif pump as an HTTP batch — Moesif events POSTed to ``/v1/events/batch``.

Each record becomes the event Tyk's pump builds (tyk-pump.md §4 Moesif): request and response
from the base64 raw request/response (URI from the request line, headers lower-cased and masked,
body masked and base64-encoded), the API key as ``session_token``, the user from
``user_id_header``, the alias, the OAuth id or the ``Authorization`` header (Basic user or a JWT
claim), the company from ``company_id_header``, and ``metadata.tyk`` with the API name and tags.
The batch goes gzipped with ``X-Moesif-Application-Id``, as Moesif's Go library sends it.

Not supported (see docs/sinks/http.md): Moesif's sampling (Tyk fetches ``/v1/config`` and drops
events by ``sample_rate``; here every event is sent, with weight 1), and the library's background
queue (``event_queue_size``, ``timer_wake_up_seconds``): each batch is sent before it is
acknowledged. A raw request that is not base64 is dead-lettered where Tyk's pump exits.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from pump.config.model import StrictModel
from pump.redact import Secret
from pump.sinks.base import SinkContext, SinkMeta, SinkSpec
from pump.sinks.http.config import Auth, check_url
from pump.sinks.http.config import Meta as HttpMeta
from pump.sinks.http.encode import Options
from pump.sinks.http.moesif_events import BATCH_PATH, DEFAULT_ENDPOINT, MoesifOptions, b64decode_raw, event_encoder, user_from_authorization
from pump.sinks.http.sink import HttpSink, build_sink

#: The event encoding lives in :mod:`pump.sinks.http.moesif_events`; these names are kept here too.
__all__ = ["SPEC", "Meta", "MoesifOptions", "b64decode_raw", "build", "event_encoder", "user_from_authorization"]


# --- the pump ---------------------------------------------------------------------------------


class BulkConfig(StrictModel):
    """Tyk's ``bulk_config``: ``batch_size`` and ``api_endpoint`` are used; the queue keys are not."""

    event_queue_size: int = Field(10000, ge=0, description="accepted; no effect (batches are sent before acknowledgement)")
    batch_size: int = Field(200, ge=0, le=100_000, description="events per request; 0 = 200")
    timer_wake_up_seconds: int = Field(2, ge=0, description="accepted; no effect")
    api_endpoint: str = Field("", description="Moesif's base URL; default https://api.moesif.net")


class Meta(SinkMeta):
    application_id: Secret = Field(description="Moesif Application Id (sent as X-Moesif-Application-Id)")
    request_header_masks: list[str] = Field(default_factory=list)
    response_header_masks: list[str] = Field(default_factory=list)
    request_body_masks: list[str] = Field(default_factory=list)
    response_body_masks: list[str] = Field(default_factory=list)
    disable_capture_request_body: bool = False
    disable_capture_response_body: bool = False
    user_id_header: str = ""
    company_id_header: str = ""
    enable_bulk: bool = Field(False, description="accepted; events are always sent in batches")
    bulk_config: BulkConfig = Field(default_factory=BulkConfig)
    authorization_header_name: str = "authorization"
    authorization_user_id_field: str = "sub"
    # --- ours ---
    batch_max_bytes: int = Field(5 << 20, ge=0, le=1 << 30, description="body bytes per request before gzip; 0 = no limit")
    workers: int = Field(1, ge=1, le=64)
    connect_timeout: float = Field(10, gt=0, le=600)
    read_timeout: float = Field(30, gt=0, le=3600)
    ssl_ca_file: str = ""

    @field_validator("application_id")
    @classmethod
    def _app_id(cls, v: SecretStr) -> SecretStr:
        if not v.get_secret_value():
            raise ValueError("the Moesif Application Id is required")
        return v

    @field_validator("bulk_config")
    @classmethod
    def _endpoint(cls, v: BulkConfig) -> BulkConfig:
        if v.api_endpoint:
            check_url(v.api_endpoint)
        return v

    def options(self) -> MoesifOptions:
        return MoesifOptions(
            tuple(self.request_header_masks), tuple(self.response_header_masks), tuple(self.request_body_masks),
            tuple(self.response_body_masks), self.disable_capture_request_body, self.disable_capture_response_body,
            self.user_id_header, self.company_id_header, self.authorization_header_name, self.authorization_user_id_field,
        )  # fmt: skip

    def to_http(self) -> HttpMeta:
        """The ``http`` settings this Moesif pump amounts to."""
        base = (self.bulk_config.api_endpoint or DEFAULT_ENDPOINT).rstrip("/")
        return HttpMeta(
            url=base + BATCH_PATH,
            format="moesif",
            auth=Auth(type="api_key", header="X-Moesif-Application-Id", token=self.application_id),
            gzip=True,
            batch_max_records=self.bulk_config.batch_size or 200,
            batch_max_bytes=self.batch_max_bytes,
            workers=self.workers,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            ssl_ca_file=self.ssl_ca_file,
        )


def build(ctx: SinkContext, meta: Meta) -> HttpSink:
    return build_sink(ctx.name, meta.to_http(), Options(moesif=meta.options()), kind="moesif")


SPEC = SinkSpec(meta=Meta, build=build)
