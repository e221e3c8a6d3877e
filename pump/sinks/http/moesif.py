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

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import orjson
from pydantic import Field, SecretStr, field_validator

from pump.config.model import StrictModel
from pump.gotime import rfc3339_nano
from pump.record import Record
from pump.redact import Secret
from pump.sinks.base import SinkContext, SinkMeta, SinkSpec
from pump.sinks.http.config import Auth, check_url
from pump.sinks.http.config import Meta as HttpMeta
from pump.sinks.http.encode import Encoder, Options, go_escape, go_float
from pump.sinks.http.sink import HttpSink, build_sink
from pump.text import json_bytes

DEFAULT_ENDPOINT = "https://api.moesif.net"
BATCH_PATH = "/v1/events/batch"
MASK = "*****"


@dataclass(frozen=True)
class MoesifOptions:
    request_header_masks: tuple[str, ...] = ()
    response_header_masks: tuple[str, ...] = ()
    request_body_masks: tuple[str, ...] = ()
    response_body_masks: tuple[str, ...] = ()
    disable_capture_request_body: bool = False
    disable_capture_response_body: bool = False
    user_id_header: str = ""
    company_id_header: str = ""
    authorization_header_name: str = "authorization"
    authorization_user_id_field: str = "sub"


# --- raw HTTP messages ------------------------------------------------------------------------


def b64decode_raw(value: str) -> bytes:
    """Tyk's base64 raw request/response. A value cut short by ``max_record_size`` is decoded up
    to its last whole quantum; anything else that is not base64 raises ``ValueError``."""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        pass
    try:
        return base64.b64decode(value[: len(value) // 4 * 4], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("raw request/response is not base64 (set no raw_*_decoded on a moesif pump)") from None


def request_uri(raw: bytes, default: str) -> str:
    """The target of the request line (``GET /a?b HTTP/1.1`` → ``/a?b``), else ``default``."""
    first, sep, _ = raw.partition(b"\r\n")
    if not sep:
        return default
    words = first.decode("utf-8", "replace").split()
    return words[1] if len(words) >= 3 else default


def mask(data: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """Tyk's ``maskData``: a key named in ``keys`` gets ``*****``, at any depth of nested objects."""
    for key, value in data.items():
        if key in keys:
            data[key] = MASK
        elif isinstance(value, dict):
            mask(value, keys)
    return data


def _no_constants(name: str) -> None:
    raise ValueError(name)


def _go_numbers(value: Any) -> Any:
    """Numbers as Go's float64 round trip prints them: whole floats lose their ``.0``."""
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, dict):
        return {k: _go_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_go_numbers(v) for v in value]
    return value


def encode_body(body: bytes, keys: tuple[str, ...]) -> str:
    """Tyk's ``maskRawBody``: a JSON object body is masked and re-encoded (keys sorted, as Go
    writes a map); any other body is sent as it is. Base64 either way."""
    try:
        doc = json.loads(body, parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return base64.b64encode(body).decode()
    if doc is None:
        body = b"null"
    elif isinstance(doc, dict):
        body = go_escape(json_bytes(_go_numbers(mask(doc, keys) if keys else doc), option=orjson.OPT_SORT_KEYS))
    else:
        return base64.b64encode(body).decode()
    return base64.b64encode(body).decode()


def headers_of(head: bytes, masks: tuple[str, ...]) -> dict[str, str]:
    """Tyk's ``decodeHeaders``: the lines after the first as ``name: value``, masked by exact
    name, then names lower-cased; returned sorted (a Go map is written in key order)."""
    found: dict[str, str] = {}
    for line in head.decode("utf-8", "replace").split("\n")[1:]:
        name, sep, value = line.removesuffix("\r").partition(":")
        if sep:
            found[name] = MASK if name in masks else value.strip()
    lowered = {k.lower(): v for k, v in found.items()}
    return {k: lowered[k] for k in sorted(lowered)}


def decode_message(
    raw: bytes, header_masks: tuple[str, ...], body_masks: tuple[str, ...], no_body: bool
) -> tuple[dict[str, str], str | None]:
    head, sep, body = raw.partition(b"\r\n\r\n")
    return headers_of(head, header_masks), (encode_body(body, body_masks) if sep and not no_body else None)


# --- users ------------------------------------------------------------------------------------


def _claim(segment: str, field: str) -> str:
    """A string claim of a JWT segment (unpadded base64url JSON), or ""."""
    if "=" in segment:
        return ""
    try:
        doc = json.loads(base64.b64decode(segment + "=" * (-len(segment) % 4), altchars=b"-_", validate=True))
    except (binascii.Error, ValueError, RecursionError):
        return ""
    value = doc.get(field) if isinstance(doc, dict) else None
    return value if isinstance(value, str) else ""


def user_from_authorization(token: str, field: str) -> str:
    """Tyk's reading of an ``Authorization`` value: the Basic user, or a claim of a JWT."""
    if "Basic" in token:
        try:
            return base64.b64decode(token.split("Basic", 1)[1].strip(), validate=True).decode("utf-8", "replace").split(":")[0]
        except (binascii.Error, ValueError):
            return ""
    if "Bearer" in token:
        parts = token.split("Bearer", 1)[1].strip().split(".")
        return _claim(parts[1], field) if len(parts) >= 2 else ""
    parts = token.split(".")
    return _claim(parts[1] if len(parts) >= 2 else token, field)


def header_id(req: dict[str, str], rsp: dict[str, str], name: str) -> str:
    """A header of the request, or of the response when it has it too (Tyk's order)."""
    key = name.lower()
    return rsp[key] if key in rsp else req.get(key, "")


def user_id(r: Record, req: dict[str, str], rsp: dict[str, str], o: MoesifOptions) -> str:
    uid = header_id(req, rsp, o.user_id_header) if o.user_id_header else ""
    if uid:
        return uid
    if r.alias:
        return r.alias
    if r.oauth_id:
        return r.oauth_id
    if req:
        token = req.get((o.authorization_header_name or "authorization").lower())
        if token is not None:
            return user_from_authorization(token, (o.authorization_user_id_field or "sub").lower())
    return ""


# --- events -----------------------------------------------------------------------------------


def _utc(ns: int) -> str:
    return rfc3339_nano(ns, UTC)


def event(r: Record, o: MoesifOptions) -> dict[str, Any]:
    """The Moesif event of one record, keys in the order Go's structs write them."""
    raw_req = b64decode_raw(r.raw_request)
    raw_rsp = b64decode_raw(r.raw_response)
    req_headers, req_body = decode_message(raw_req, o.request_header_masks, o.request_body_masks, o.disable_capture_request_body)
    rsp_headers, rsp_body = decode_message(raw_rsp, o.response_header_masks, o.response_body_masks, o.disable_capture_response_body)
    return {
        "request": {
            "time": _utc(r.timestamp_ns),
            "uri": request_uri(raw_req, r.path),
            "verb": r.method,
            "headers": req_headers,
            "api_version": r.api_version,
            "ip_address": r.ip_address,
            "body": req_body,
            "transfer_encoding": "base64",
        },
        "response": {
            "time": _utc(r.timestamp_ns + r.request_time * 1_000_000),
            "status": r.response_code,
            "headers": rsp_headers,
            "body": rsp_body,
            "transfer_encoding": "base64",
        },
        "session_token": r.api_key,
        "user_id": user_id(r, req_headers, rsp_headers, o),
        "company_id": header_id(req_headers, rsp_headers, o.company_id_header) if o.company_id_header else "",
        "metadata": {"tyk": {"api_name": r.api_name, "tags": r.tags}},
        "direction": "Incoming",
        "weight": 1,
    }


def event_encoder(o: MoesifOptions) -> Encoder:
    return lambda r: go_escape(json_bytes(event(r, o)))


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
