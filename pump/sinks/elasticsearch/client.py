"""A small HTTP client for Elasticsearch-API servers: node rotation and failover, auth, TLS.

Why not the official clients: ``elasticsearch`` 8/9 refuse any server that does not say it is
Elasticsearch (so OpenSearch and, with 8/9 compatibility headers, ES 7), and ``opensearch-py`` is
the mirror image. The ``_bulk`` NDJSON API is identical everywhere, so one pooled ``httpx`` client
speaks to Elasticsearch 7/8/9 and OpenSearch 1/2 alike, with no product check and no background
sniffing.

Credentials go only into headers; URLs in logs and errors are redacted.
"""

from __future__ import annotations

import base64
import logging
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
import orjson

from pump.errors import RetriableError
from pump.redact import redact_url
from pump.sinks.elasticsearch.config import Meta
from pump.sinks.httpio import request as http_request
from pump.sinks.tls import tls_context

log = logging.getLogger(__name__)

# httpx logs every request at INFO, i.e. a line per _bulk request: our own logs already say what
# was written. Quieten it unless someone configured that logger on purpose.
for _name in ("httpx", "httpcore"):
    if logging.getLogger(_name).level == logging.NOTSET:
        logging.getLogger(_name).setLevel(logging.WARNING)


def auth_header(meta: Meta, url_user: str = "", url_password: str = "") -> str | None:
    """The ``Authorization`` value: an API key wins over basic auth (as in Tyk), and explicit
    basic-auth keys win over credentials written in the URL."""
    api_key = meta.auth_api_key.get_secret_value()
    if meta.auth_api_key_id and api_key:
        token = base64.b64encode(f"{meta.auth_api_key_id}:{api_key}".encode()).decode()
        return f"ApiKey {token}"
    user, password = meta.auth_basic_username, meta.auth_basic_password.get_secret_value()
    if not (user or password):
        user, password = url_user, url_password
    if user or password:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    return None


def strip_credentials(url: str) -> tuple[str, str, str]:
    """``(url without user:password@, user, password)``."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, "", ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    bare = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return bare, unquote(parts.username or ""), unquote(parts.password or "")


@dataclass(frozen=True)
class ServerInfo:
    """What ``GET /`` said: product and version."""

    product: str  # "elasticsearch" or "opensearch"
    version: str

    @property
    def major(self) -> int:
        head = self.version.split(".", 1)[0]
        return int(head) if head.isdigit() else 0

    @property
    def minor(self) -> int:
        parts = self.version.split(".")
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0

    @property
    def has_mapping_types(self) -> bool:
        """Elasticsearch before 7 wants ``_type`` in bulk lines and typed template mappings."""
        return self.product == "elasticsearch" and 0 < self.major < 7

    @property
    def has_composable_templates(self) -> bool:
        """``_index_template`` exists in Elasticsearch 7.8+ and every OpenSearch."""
        return self.product == "opensearch" or self.major > 7 or (self.major == 7 and self.minor >= 8)

    @staticmethod
    def from_root(doc: Any) -> ServerInfo | None:
        version = doc.get("version") if isinstance(doc, dict) else None
        if not isinstance(version, dict) or not isinstance(version.get("number"), str):
            return None
        product = "opensearch" if version.get("distribution") == "opensearch" else "elasticsearch"
        return ServerInfo(product, version["number"])


class Client:
    """Requests that rotate over the configured nodes and fail over on connection errors.

    A refused or timed-out connection moves the same request to the next node at once; only when
    every node failed does the caller get ``RetriableError`` (and the delivery layer backs off).
    Retrying a ``_bulk`` on another node is safe: documents are created with fixed ids.
    """

    def __init__(self, meta: Meta) -> None:
        self.urls: list[str] = []
        url_user = url_password = ""
        for raw in meta.urls:
            url, user, password = strip_credentials(raw)
            self.urls.append(url)
            url_user, url_password = url_user or user, url_password or password
        headers = {"Accept": "application/json", "User-Agent": "pump (Tyk Pump compatible)"}
        authorization = auth_header(meta, url_user, url_password)
        if authorization:
            headers["Authorization"] = authorization
        verify: ssl.SSLContext | bool = tls_context(meta) if any(u.startswith("https:") for u in self.urls) else True
        workers = meta.bulk_config.concurrency
        self.http = httpx.AsyncClient(
            headers=headers,
            verify=verify,
            timeout=httpx.Timeout(meta.request_timeout, connect=min(10.0, meta.request_timeout)),
            limits=httpx.Limits(max_connections=max(4, workers * 2), max_keepalive_connections=max(4, workers * 2)),
            follow_redirects=False,
        )
        self._next = 0

    @property
    def shown_urls(self) -> str:
        return ",".join(redact_url(u) for u in self.urls)

    async def request(
        self, method: str, path: str, *, content: bytes | None = None, params: dict[str, str] | None = None, ndjson: bool = False
    ) -> httpx.Response:
        """Send one request to the next node; on connection failure try the others in turn."""
        headers = {"Content-Type": "application/x-ndjson" if ndjson else "application/json"} if content is not None else None
        start = self._next
        self._next = (self._next + 1) % len(self.urls)
        errors: list[str] = []
        for attempt in range(len(self.urls)):
            base = self.urls[(start + attempt) % len(self.urls)]
            try:
                return await http_request(self.http, method, base + path, content=content, params=params, headers=headers)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                errors.append(f"{redact_url(base)}: {type(exc).__name__}: {exc}")
            except httpx.TimeoutException as exc:
                # The node took the request but did not answer in time; it may still apply it.
                # Report at once rather than load the next node with the same work.
                raise RetriableError(f"{method} {path} to {redact_url(base)} timed out ({type(exc).__name__})") from exc
            except httpx.HTTPError as exc:
                errors.append(f"{redact_url(base)}: {type(exc).__name__}: {exc}")
        raise RetriableError(f"cannot reach any Elasticsearch node: {'; '.join(errors)}")

    async def json(self, method: str, path: str, body: Any = None) -> tuple[int, Any, bytes]:
        """A JSON request: (status, decoded body or None, raw body)."""
        content = orjson.dumps(body) if body is not None else None
        resp = await self.request(method, path, content=content)
        try:
            decoded = orjson.loads(resp.content) if resp.content else None
        except orjson.JSONDecodeError:
            decoded = None
        return resp.status_code, decoded, resp.content

    async def aclose(self) -> None:
        await self.http.aclose()
