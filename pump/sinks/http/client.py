"""The HTTP side of the ``http`` pump: one pooled ``httpx`` client, auth, TLS, and what each
answer means for the records it carried.

Outcomes (``OK``, ``RETRY``, ``DATA``) follow the statuses, not the body:

* a ``done_codes`` status (any 2xx by default) — delivered;
* 5xx and ``retry_codes`` (408, 425, 429, and 401/403/404/407, which say the pump's token, URL
  or proxy is wrong, not the record) — retried, after the server's ``Retry-After`` if it sent one;
* 3xx — retried with a message naming where the server redirects to (redirects are not followed:
  a body re-sent to another address is a decision for the operator, not the pump);
* any other 4xx (400, 413, 422…) — a data error: the records of that request are split until the
  one the server refuses is found and dead-lettered.

Connection failures, timeouts and TLS failures are retried, with a message that says what to fix
(a certificate the pump does not trust names ``ssl_ca_file``). Credentials only ever travel in
headers; URLs and server text in messages go through ``pump.redact``.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import gzip
import logging
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from pump import __version__
from pump.errors import RetriableError
from pump.redact import redact_url, scrub
from pump.sinks.http.config import Meta
from pump.sinks.httpio import request as http_request
from pump.sinks.tls import tls_context

log = logging.getLogger(__name__)

for _name in ("httpx", "httpcore"):  # a line per request at INFO otherwise
    if logging.getLogger(_name).level == logging.NOTSET:
        logging.getLogger(_name).setLevel(logging.WARNING)

OK, RETRY, DATA = 0, 1, 2

#: Bodies larger than this are gzipped in a thread, so the event loop keeps serving other pumps.
_GZIP_INLINE = 256 << 10


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one request's answer means: ``kind`` (OK/RETRY/DATA), why, and the wait asked for."""

    kind: int
    reason: str = ""
    retry_after: float | None = None


DELIVERED = Outcome(OK)


def auth_headers(meta: Meta) -> dict[str, str]:
    """The header that signs every request, from ``auth``."""
    auth = meta.auth
    token = auth.token.get_secret_value()
    if auth.type == "bearer":
        return {"Authorization": f"Bearer {token}"}
    if auth.type == "basic":
        pair = f"{auth.username}:{auth.password.get_secret_value()}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
    if auth.type == "api_key":
        return {auth.header or "X-API-Key": auth.prefix + token}
    return {}


def retry_after_seconds(value: str | None, cap: float, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: a number of seconds or an HTTP date; ``None`` if absent or
    unreadable; at most ``cap`` (a server asking for a day would otherwise stall the pump)."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return min(max(0.0, seconds), cap)


def classify(status: int, retry_after: str | None, text: str, meta: Meta) -> Outcome:
    """The outcome of an answer (see the module docstring)."""
    done = status in meta.done_codes if meta.done_codes else 200 <= status < 300
    if done:
        return DELIVERED
    snippet = scrub(" ".join(text[:300].split()))
    reason = f"HTTP {status}" + (f": {snippet}" if snippet else "")
    if status >= 500 or status in meta.retry_codes:
        hint = {
            401: " (authentication failed: check auth)",
            403: " (forbidden: check auth and the server's permissions)",
            404: " (not found: check url)",
            407: " (proxy authentication required: check HTTPS_PROXY)",
        }.get(status, "")
        return Outcome(RETRY, reason + hint, retry_after_seconds(retry_after, meta.max_retry_after))
    if 300 <= status < 400:
        return Outcome(RETRY, f"HTTP {status}: redirects are not followed; point url at the final address")
    if status < 200:
        return Outcome(RETRY, reason)
    return Outcome(DATA, reason)


def describe_error(exc: httpx.HTTPError, url: str) -> str:
    """One line saying what went wrong and what to change."""
    shown = redact_url(url)
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            detail = cause.verify_message or cause.reason or str(cause)
            return (
                f"TLS: the certificate of {urlsplit(url).netloc} is not trusted ({detail}); set ssl_ca_file to the CA that "
                "signed it, or ssl_server_name to the name it carries"
            )
        if isinstance(cause, ssl.SSLError):
            return f"TLS handshake with {urlsplit(url).netloc} failed ({cause.reason or cause}); check ssl_cert_file/ssl_key_file"
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.ConnectTimeout):
        return f"{shown}: connect timed out (connect_timeout)"
    if isinstance(exc, httpx.TimeoutException):
        return f"{shown}: no answer in time (read_timeout); the server may still apply the request"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect to {shown}: {exc or type(exc).__name__}"
    return f"{shown}: {type(exc).__name__}: {exc}"


class Client:
    """Sends request bodies; every failure becomes an :class:`Outcome`, never an exception."""

    def __init__(self, meta: Meta, content_type: str) -> None:
        self.meta = meta
        headers = {"User-Agent": f"pump/{__version__} (Tyk Pump compatible)", "Content-Type": content_type}
        headers.update(meta.headers)
        headers.update(auth_headers(meta))
        if meta.gzip:
            headers["Content-Encoding"] = "gzip"
        verify: ssl.SSLContext | bool = tls_context(meta) if meta.url.startswith("https:") else True
        self.extensions = {"sni_hostname": meta.ssl_server_name} if meta.ssl_server_name else None
        self.http = httpx.AsyncClient(
            headers=headers,
            verify=verify,
            timeout=httpx.Timeout(meta.read_timeout, connect=meta.connect_timeout, pool=meta.connect_timeout + meta.read_timeout),
            limits=httpx.Limits(max_connections=meta.workers * 2, max_keepalive_connections=meta.workers * 2),
            follow_redirects=False,
            trust_env=meta.use_env_proxy,
        )

    async def send(self, url: str, body: bytes) -> Outcome:
        if self.meta.gzip:
            body = await self._gzip(body)
        try:
            resp = await http_request(self.http, self.meta.method, url, content=body, extensions=self.extensions)
        except httpx.HTTPError as exc:
            return Outcome(RETRY, describe_error(exc, url))
        text = resp.text if not (200 <= resp.status_code < 300) else ""
        return classify(resp.status_code, resp.headers.get("Retry-After"), text, self.meta)

    async def probe(self, url: str) -> str:
        """``pump validate --check``: an ``OPTIONS`` request. Any HTTP answer shows that DNS, the
        connection, TLS and a server are there; returns the status line, raises on failure."""
        try:
            resp = await http_request(self.http, "OPTIONS", url, extensions=self.extensions)
        except httpx.HTTPError as exc:
            raise RetriableError(describe_error(exc, url)) from exc
        return f"HTTP {resp.status_code}"

    async def _gzip(self, body: bytes) -> bytes:
        level = self.meta.gzip_level
        if len(body) > _GZIP_INLINE:
            return await asyncio.to_thread(gzip.compress, body, level, mtime=0)
        return gzip.compress(body, level, mtime=0)

    async def aclose(self) -> None:
        await self.http.aclose()
