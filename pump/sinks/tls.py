"""The client TLS context of every sink that speaks TLS itself (elasticsearch, http, syslog).

Verified by default: the system CAs, or ``ssl_ca_file``; a client certificate when
``ssl_cert_file``/``ssl_key_file`` are set; no verification only when ``ssl_insecure_skip_verify``
asks for it. One function, so a sink cannot quietly verify less than the others.
"""

from __future__ import annotations

import ssl
from typing import Protocol


class TlsSettings(Protocol):
    """The meta keys a TLS client reads (Tyk's names)."""

    @property
    def ssl_ca_file(self) -> str: ...
    @property
    def ssl_cert_file(self) -> str: ...
    @property
    def ssl_key_file(self) -> str: ...
    @property
    def ssl_insecure_skip_verify(self) -> bool: ...


def tls_context(meta: TlsSettings) -> ssl.SSLContext:
    """An SSL context for a client connection configured by ``meta``."""
    ctx = ssl.create_default_context(cafile=meta.ssl_ca_file or None)
    if meta.ssl_cert_file:
        ctx.load_cert_chain(meta.ssl_cert_file, meta.ssl_key_file or None)
    if meta.ssl_insecure_skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
