"""The ``meta`` block of an ``http`` pump: where to send, in which body format, how to sign in.

Everything that can only fail later — a URL placeholder that names no record field, an auth
secret whose environment variable is unset or whose file cannot be read, a certificate without
its key — is refused here, so ``pump validate`` names the key. Secrets given by value, by
environment variable or by file all end up as ``SecretStr`` and are remembered by
``pump.redact``, so no log line, ``/ready`` body or dead-letter reason can show them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from pump.config.model import StrictModel
from pump.redact import Secret, UrlStr, redact_url, remember
from pump.sinks.base import SinkMeta
from pump.sinks.http.formats import check_fields  # the encoders know their documents' keys

#: Body formats (``format``): ours, then the collector templates.
FORMATS = ("ndjson", "json-array", "splunk", "moesif", "logzio")
_FORMAT_ALIASES = {"json_array": "json-array", "array": "json-array", "hec": "splunk", "splunk-hec": "splunk", "logz.io": "logzio"}

#: ``{name}`` in the URL: replaced per record by that field's value (percent-encoded).
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
#: Record fields a URL placeholder may name (strings and numbers; not nested or raw data).
URL_FIELDS = frozenset(
    {
        "method", "host", "path", "raw_path", "response_code", "api_key", "api_version", "api_name", "api_id",
        "org_id", "oauth_id", "ip_address", "alias", "api_schema", "listen_path", "original_path", "day", "month",
        "year", "hour", "geo_country_iso_code", "collection_name",
    }
)  # fmt: skip

#: Headers the client computes itself; setting them in ``headers`` would corrupt the request.
RESERVED_HEADERS = frozenset({"content-length", "content-encoding", "transfer-encoding", "host", "connection"})

#: 4xx answers retried rather than treated as a data error: they say the pump's settings (token,
#: URL, proxy credentials) are wrong or the server is busy, not that a record is bad. Dead-lettering
#: on them would send the whole stream to the dead letters because of one wrong token.
DEFAULT_RETRY_CODES = (401, 403, 404, 407, 408, 425, 429)


def _secret_from(where: str, value: SecretStr, env: str, file: str) -> SecretStr:
    """One secret given by value, ``…_env`` (a variable name) or ``…_file`` (a path): resolved now,
    so a missing variable or unreadable file fails validation naming the key."""
    given = [k for k, v in ((where, value.get_secret_value()), (f"{where}_env", env), (f"{where}_file", file)) if v]
    if len(given) > 1:
        raise ValueError(f"set only one of {', '.join(given)}")
    if env:
        if env not in os.environ:
            raise ValueError(f"{where}_env: environment variable {env} is not set")
        text = os.environ[env]
    elif file:
        try:
            text = Path(file).read_text(encoding="utf-8").strip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{where}_file: cannot read {file}: {getattr(exc, 'strerror', None) or exc}") from None
    else:
        return value
    remember(text)
    return SecretStr(text)


class Auth(StrictModel):
    """How the pump signs its requests. ``bearer``: ``Authorization: Bearer <token>``; ``basic``:
    ``username``/``password``; ``api_key``: ``<header>: <prefix><token>`` (``X-API-Key`` by default).
    Each secret comes from its value, from ``…_env`` (an environment variable) or ``…_file``."""

    type: Literal["none", "bearer", "basic", "api_key"] = "none"
    token: Secret = SecretStr("")
    token_env: str = ""
    token_file: str = ""
    username: str = ""
    password: Secret = SecretStr("")
    password_env: str = ""
    password_file: str = ""
    header: str = Field("", description="api_key: the header carrying the key; default X-API-Key")
    prefix: str = Field("", description="api_key: text before the key, e.g. 'Splunk '")

    @model_validator(mode="after")
    def _resolve(self) -> Auth:
        self.token = _secret_from("token", self.token, self.token_env, self.token_file)
        self.password = _secret_from("password", self.password, self.password_env, self.password_file)
        if self.type in ("bearer", "api_key") and not self.token.get_secret_value():
            raise ValueError(f"type {self.type} needs token (or token_env / token_file)")
        if self.type == "basic" and not (self.username or self.password.get_secret_value()):
            raise ValueError("type basic needs username and password (or password_env / password_file)")
        if self.header and not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", self.header):
            raise ValueError(f"header {self.header!r} is not a valid HTTP header name")
        return self


class Meta(SinkMeta):
    """``type: http``. See docs/sinks/http.md for every key with an example."""

    url: UrlStr = Field(description="http(s) URL; {field} placeholders in path and query are filled per record")
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    format: str = Field("ndjson", description="ndjson, json-array, splunk, moesif or logzio")
    fields: list[str] = Field(default_factory=list, description="keys of each record document to keep; empty = the format's default")
    headers: dict[str, str] = Field(default_factory=dict, description="extra request headers")
    auth: Auth = Field(default_factory=Auth)
    gzip: bool = Field(False, description="gzip request bodies (Content-Encoding: gzip)")
    gzip_level: int = Field(5, ge=1, le=9)
    # TLS: verified by default against the system CAs or ssl_ca_file.
    ssl_ca_file: str = ""
    ssl_cert_file: str = ""
    ssl_key_file: str = ""
    ssl_insecure_skip_verify: bool = False
    ssl_server_name: str = Field("", description="name the server certificate must carry (and SNI); default the URL's host")
    connect_timeout: float = Field(10, gt=0, le=600, description="seconds to connect (TCP and TLS)")
    read_timeout: float = Field(30, gt=0, le=3600, description="seconds to wait for the answer to one request")
    batch_max_records: int = Field(500, ge=0, le=1_000_000, description="records per request; 0 = no limit")
    batch_max_bytes: int = Field(5 << 20, ge=0, le=1 << 30, description="body bytes per request before gzip; 0 = no limit")
    workers: int = Field(1, ge=1, le=64, description="requests in flight at once within one batch")
    done_codes: list[int] = Field(default_factory=list, description="statuses that mean delivered; empty = any 2xx")
    retry_codes: list[int] = Field(default_factory=lambda: list(DEFAULT_RETRY_CODES), description="4xx retried; 5xx always are")
    max_retry_after: float = Field(300, ge=0, le=86400, description="longest Retry-After honoured, seconds")
    use_env_proxy: bool = Field(True, description="honour HTTP(S)_PROXY / NO_PROXY from the environment")

    @field_validator("format", mode="before")
    @classmethod
    def _format(cls, v: Any) -> Any:
        text = str(v).strip().lower() if v is not None else "ndjson"
        text = _FORMAT_ALIASES.get(text, text)
        if text not in FORMATS:
            raise ValueError(f"{v!r} is not a body format; use one of {', '.join(FORMATS)}")
        return text

    @field_validator("method", mode="before")
    @classmethod
    def _method(cls, v: Any) -> Any:
        return v.strip().upper() if isinstance(v, str) else v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        check_url(v)
        return v

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v:
            if name.lower() in RESERVED_HEADERS:
                raise ValueError(f"{name!r} is set by the pump itself; remove it (use gzip: true for Content-Encoding)")
            if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
                raise ValueError(f"{name!r} is not a valid HTTP header name")
        return v

    @field_validator("done_codes", "retry_codes")
    @classmethod
    def _codes(cls, v: list[int]) -> list[int]:
        for code in v:
            if not 100 <= code <= 599:
                raise ValueError(f"{code} is not an HTTP status (100-599)")
        return v

    @model_validator(mode="after")
    def _pairs(self) -> Meta:
        if bool(self.ssl_cert_file) != bool(self.ssl_key_file):
            raise ValueError("ssl_cert_file and ssl_key_file must be set together (client certificate and its key)")
        for name in ("ssl_ca_file", "ssl_cert_file", "ssl_key_file"):
            path = getattr(self, name)
            if path and not Path(path).is_file():
                raise ValueError(f"{name}: {path} is not a readable file")
        check_fields(self.format, self.fields)
        return self

    @property
    def placeholders(self) -> list[str]:
        return PLACEHOLDER.findall(self.url)


def check_url(url: str) -> None:
    """An http(s) URL with a host, placeholders only in path and query, each naming a record field."""
    parts = urlsplit(PLACEHOLDER.sub("x", url))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{redact_url(url)!r} is not an http:// or https:// URL")
    head = url.split("://", 1)[-1].split("/", 1)[0].split("?", 1)[0]
    if PLACEHOLDER.search(head):
        raise ValueError("placeholders may appear in the path and query only, not in the host")
    for name in PLACEHOLDER.findall(url):
        if name not in URL_FIELDS:
            raise ValueError(f"placeholder {{{name}}} names no record field; use one of {', '.join(sorted(URL_FIELDS))}")
