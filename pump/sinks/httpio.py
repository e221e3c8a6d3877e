"""One HTTP request with httpx, freed as soon as the caller drops the response (ES, HTTP sinks).

httpx's ``Response`` and the ``BoundAsyncStream`` it reads from refer to each other, so every
response — and the ``Request`` it holds, with the whole request body — is garbage only for the
cyclic collector, which the pump runs rarely (pump/process.py, ``tune_gc``): the Elasticsearch
pump held ~80 of its 1.7 MB ``_bulk`` bodies at once (141 MB of its 277 MB peak, memray,
200,000 records) although only two were ever in flight. A response read in full no longer needs
its stream: replacing it breaks the cycle, and reference counting frees the response, the request
and its body when the caller is done.
"""

from __future__ import annotations

from typing import Any

import httpx

#: What a fully read response's stream is replaced with: it has been read and closed already.
_READ = httpx.ByteStream(b"")


async def request(http: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """``http.request(method, url, **kwargs)`` (the body read in full), without the cycle."""
    resp = await http.request(method, url, **kwargs)
    resp.stream = _READ
    return resp
