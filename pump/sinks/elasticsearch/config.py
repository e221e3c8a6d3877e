"""The ``meta`` block of an ``elasticsearch`` pump: every key of Tyk's ``ElasticsearchConf`` plus ours.

Tyk keys keep Tyk's meaning where it still makes sense for a synchronous writer (see
docs/sinks/elasticsearch.md, "Differences from Tyk"). Values Tyk would accept but that can only
fail later — an index name Elasticsearch refuses, half an API key, a certificate without its key —
are refused here, when ``pump validate`` can still say which key is wrong.
"""

from __future__ import annotations

import re
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from pump.config.model import StrictModel
from pump.redact import Secret, UrlStr, redact_url
from pump.sinks.base import SinkMeta

#: ``version`` values: Tyk's ("3" default there, "5", "6", "7", "8") plus ours.
VERSIONS = ("", "3", "5", "6", "7", "8", "9", "opensearch")
#: Versions whose ``_bulk`` action lines carry ``_type`` (mapping types were removed in 7).
TYPED_VERSIONS = frozenset({"3", "5", "6"})

#: Tyk's (olivere/elastic's) bulk processor defaults.
DEFAULT_BULK_ACTIONS = 1000
DEFAULT_BULK_SIZE = 5 << 20

_BAD_INDEX_CHARS = re.compile(r'[\\/*?"<>| ,#:\x00-\x1f]')


def check_index_name(name: str) -> str:
    """Refuse names Elasticsearch/OpenSearch would refuse at the first write, with the rule broken."""
    if not name:
        raise ValueError("must not be empty")
    if name != name.lower():
        raise ValueError(f"{name!r}: index names must be lower case")
    if bad := _BAD_INDEX_CHARS.search(name):
        raise ValueError(f'{name!r}: index names must not contain {bad.group()!r} (nor \\ / * ? " < > | , # : or spaces)')
    if name.startswith(("-", "_", "+")) or name in (".", ".."):
        raise ValueError(f"{name!r}: index names must not start with '-', '_' or '+' nor be '.' or '..'")
    if len(name.encode()) > 200:
        raise ValueError(f"{name!r}: keep index names under 200 bytes (255 is the server's limit, dates and kinds are appended)")
    return name


class BulkConfig(StrictModel):
    """Tyk's ``bulk_config``. The delivery layer owns batching and acknowledgement, so these
    describe how one batch is cut into ``_bulk`` requests rather than a background buffer."""

    workers: int = Field(1, ge=0, description="concurrent _bulk requests within one batch; 0 = 1")
    flush_interval: int = Field(0, description="accepted for Tyk compatibility; no effect (writes are synchronous)")
    bulk_actions: int = Field(DEFAULT_BULK_ACTIONS, ge=-1, description="documents per _bulk request; 0 = 1000, -1 = no limit")
    bulk_size: int = Field(DEFAULT_BULK_SIZE, ge=-1, description="bytes per _bulk request; 0 = 5 MiB, -1 = no limit")

    @property
    def max_actions(self) -> int:
        """Documents per request, 0 meaning unlimited."""
        if self.bulk_actions == -1:
            return 0
        return self.bulk_actions or DEFAULT_BULK_ACTIONS

    @property
    def max_bytes(self) -> int:
        """Bytes per request, 0 meaning unlimited."""
        if self.bulk_size == -1:
            return 0
        return self.bulk_size or DEFAULT_BULK_SIZE

    @property
    def concurrency(self) -> int:
        return max(1, self.workers)


class Meta(SinkMeta):
    # --- Tyk's keys -------------------------------------------------------------------------------
    index_name: str = Field("tyk_analytics", description="index (or base of the rolling/per-kind names)")
    elasticsearch_url: UrlStr = Field("http://localhost:9200", description="comma-separated node URLs; requests rotate and fail over")
    use_sniffing: bool = Field(False, description="accepted; no effect: list every node in elasticsearch_url")
    document_type: str = Field("tyk_analytics", description="_type sent to Elasticsearch < 7 only")
    rolling_index: bool = Field(False, description="append -YYYY.MM.DD of the record's own date")
    extended_stats: bool = Field(False, description="add raw_request, raw_response, user_agent")
    generate_id: bool = Field(False, description="use Tyk's murmur3 _id instead of our record id")
    decode_base64: bool = Field(False, description="with extended_stats, store raw request/response decoded")
    version: str = Field("", description="'' = detect; 3/5/6 send _type; 7/8/9/opensearch do not")
    disable_bulk: bool = Field(False, description="one _create request per document (slow; compatibility)")
    bulk_config: BulkConfig = Field(default_factory=BulkConfig)
    auth_api_key_id: str = ""
    auth_api_key: Secret = SecretStr("")
    auth_basic_username: str = ""
    auth_basic_password: Secret = SecretStr("")
    use_ssl: bool = Field(False, description="TLS follows the URL scheme; kept for Tyk configs")
    ssl_insecure_skip_verify: bool = False
    ssl_cert_file: str = ""
    ssl_key_file: str = ""
    ssl_ca_file: str = ""
    mcp_index_name: str = Field("", description="index for MCP records; empty = index_name")
    # --- ours -------------------------------------------------------------------------------------
    index_per_kind: bool = Field(False, description="write to {index}_requests, {index}_errors, {index}_throttled")
    event_kind_index: bool = Field(
        False, description="write to {index}_request, {index}_fault, {index}_throttled (pump.transforms.eventkind)"
    )
    extra_fields: bool = Field(True, description="add host, event_kind, latencies, geo fields to Tyk's document")
    index_template: bool = Field(True, description="install an index template with typed mappings at start")
    string_mapping: Literal["multi", "tyk", "keyword"] = Field(
        "multi",
        description="Tyk's string fields: multi = keyword + a .keyword subfield (Tyk's Kibana objects work); "
        "tyk = text + .keyword, Tyk's dynamic mapping; keyword = keyword only, the earlier mapping",
    )
    template_name: str = Field("", description="default: pump-<index_name>")
    template_priority: int = Field(100, ge=0, description="priority of the composable template")
    index_settings: dict[str, Any] = Field(default_factory=dict, description="index settings in the template, e.g. number_of_replicas")
    request_timeout: float = Field(60, gt=0, description="seconds per HTTP request")

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, v: Any) -> Any:
        text = str(v).strip().lower() if v is not None else ""
        if text not in VERSIONS:
            raise ValueError(f"{v!r} is not a supported version; use one of {', '.join(repr(x) for x in VERSIONS)}")
        return text

    @field_validator("index_name")
    @classmethod
    def _index(cls, v: str) -> str:
        return check_index_name(v)

    @field_validator("mcp_index_name")
    @classmethod
    def _mcp_index(cls, v: str) -> str:
        return check_index_name(v) if v else v

    @field_validator("elasticsearch_url")
    @classmethod
    def _urls(cls, v: str) -> str:
        urls = split_urls(v)
        if not urls:
            raise ValueError("no URL given")
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{redact_url(url)!r} is not an http:// or https:// URL")
        return v

    @model_validator(mode="after")
    def _pairs(self) -> Meta:
        if bool(self.auth_api_key_id) != bool(self.auth_api_key):
            raise ValueError("auth_api_key_id and auth_api_key must be set together")
        if bool(self.ssl_cert_file) != bool(self.ssl_key_file):
            raise ValueError("ssl_cert_file and ssl_key_file must be set together (client certificate and its key)")
        if self.index_per_kind and self.event_kind_index:
            raise ValueError("index_per_kind and event_kind_index are two ways to split the index; choose one")
        return self

    @property
    def urls(self) -> list[str]:
        return split_urls(self.elasticsearch_url)


def split_urls(value: str) -> list[str]:
    """Tyk's comma-separated URL list, blanks and trailing slashes removed."""
    return [u.strip().rstrip("/") for u in value.split(",") if u.strip()]
