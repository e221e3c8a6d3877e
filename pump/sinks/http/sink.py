"""The ``http`` sink: each batch becomes one or more requests, and returns only when every record
was accepted by the server or the delivery layer has been told exactly what to do with the rest.

Records are grouped by their URL (placeholders filled from each record: ``/authors/{api_id}``
sends one request per API id), each group cut into requests of at most ``batch_max_records``
records and ``batch_max_bytes`` bytes, sent ``workers`` at a time. What the answers mean:

* all delivered — done;
* nothing delivered and something to retry — ``RetriableError`` with the longest ``Retry-After``
  asked for: the pump is marked failing, its new batches wait in Redis, the same records are
  written again after the wait (nothing was delivered, so nothing is sent twice);
* nothing delivered and a data error — ``BatchDataError``: the delivery layer splits the batch
  until it holds only the record the server refuses, and dead-letters that one;
* some requests delivered — ``RejectedRecords``: only the records of the failed requests are
  written again (a lone record whose request was refused as data is dead-lettered at once), so
  the delivered ones are not sent twice.

Delivery is at-least-once like every pump's: a request that timed out may have been applied by
the server, and is sent again. Once a request must be retried the rest of the batch is not sent
(an overloaded or unreachable server gets no more load from this write).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from urllib.parse import quote, urlsplit

import orjson

from pump.errors import BatchDataError, RejectedRecords, RetriableError
from pump.record import Record
from pump.redact import redact_url
from pump.sinks.base import SinkBatch
from pump.sinks.http.client import DATA, OK, RETRY, Client, Outcome
from pump.sinks.http.config import PLACEHOLDER, Meta
from pump.sinks.http.encode import FRAMINGS, Options, chunks
from pump.sinks.http.formats import encoder

log = logging.getLogger(__name__)

_Request = tuple[str, list[tuple[int, bytes]]]  # url, [(position in batch, encoded record)]
_ENCODE_ERRORS = (TypeError, ValueError, OverflowError, orjson.JSONEncodeError)


class HttpSink:
    def __init__(self, name: str, meta: Meta, options: Options | None = None, kind: str = "http") -> None:
        self.name = name
        self.meta = meta
        self.kind = kind
        self.framing = FRAMINGS[meta.format]
        self.encode = encoder(meta.format, options or Options(fields=tuple(meta.fields)))
        self.placeholders = meta.placeholders
        self.client: Client | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def _client(self) -> Client:
        if self.client is None:
            try:
                self.client = Client(self.meta, self.framing.content_type)
            except (OSError, ValueError) as exc:  # unreadable CA / certificate / key file
                raise RetriableError(f"cannot set up TLS: {exc}; check ssl_ca_file, ssl_cert_file and ssl_key_file") from exc
        return self.client

    async def start(self) -> None:
        self._client()
        log.info(
            "HTTP pump ready.",
            extra={
                "pump": self.name,
                "kind": self.kind,
                "url": redact_url(self.meta.url),
                "format": self.meta.format,
                "batch": f"{self.meta.batch_max_records or '-'} records/{self.meta.batch_max_bytes or '-'} B x{self.meta.workers}",
                "gzip": self.meta.gzip,
            },
        )

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await client.aclose()

    async def check(self) -> None:
        parts = urlsplit(self.meta.url)
        await self._client().probe(f"{parts.scheme}://{parts.netloc}/")

    # -- writing -----------------------------------------------------------------------------------

    def url_for(self, r: Record) -> str:
        """The URL of one record: each ``{field}`` replaced by its value, percent-encoded."""
        if not self.placeholders:
            return self.meta.url
        return PLACEHOLDER.sub(lambda m: quote(str(getattr(r, m.group(1))), safe=""), self.meta.url)

    def plan(self, records: Sequence[Record]) -> tuple[list[_Request], dict[int, str]]:
        """The requests of a batch, and the records that cannot be encoded at all (by position)."""
        groups: dict[str, list[tuple[int, bytes]]] = {}
        rejected: dict[int, str] = {}
        encode = self.encode
        for pos, r in enumerate(records):
            try:
                item = encode(r)
                url = self.url_for(r)
            except _ENCODE_ERRORS as exc:
                rejected[pos] = f"cannot encode the record as {self.meta.format}: {type(exc).__name__}: {exc}"
                continue
            groups.setdefault(url, []).append((pos, item))
        m = self.meta
        requests = [
            (url, chunk) for url, items in groups.items() for chunk in chunks(items, self.framing, m.batch_max_records, m.batch_max_bytes)
        ]
        return requests, rejected

    async def write(self, batch: SinkBatch) -> None:
        if not batch.records:
            return
        requests, rejected = self.plan(batch.records)
        outcomes = await self._send_all(requests)
        self._finish(batch, requests, outcomes, rejected)

    async def _send_all(self, requests: list[_Request]) -> list[Outcome]:
        client = self._client()
        outcomes: list[Outcome | None] = [None] * len(requests)
        stop = asyncio.Event()  # set by the first retriable failure: send nothing more
        sem = asyncio.Semaphore(self.meta.workers)

        async def one(i: int, url: str, chunk: list[tuple[int, bytes]]) -> None:
            async with sem:
                if stop.is_set():
                    return
                outcome = await client.send(url, self.framing.body([item for _, item in chunk]))
                outcomes[i] = outcome
                if outcome.kind == RETRY:
                    stop.set()

        if len(requests) == 1 or self.meta.workers == 1:
            for i, (url, chunk) in enumerate(requests):
                await one(i, url, chunk)
        else:
            await asyncio.gather(*(one(i, url, chunk) for i, (url, chunk) in enumerate(requests)))
        skipped = Outcome(RETRY, "not sent: an earlier request of the batch must be retried first")
        return [o if o is not None else skipped for o in outcomes]

    def _finish(self, batch: SinkBatch, requests: list[_Request], outcomes: list[Outcome], rejected: dict[int, str]) -> None:
        """Tell the delivery layer what became of each record (see the module docstring)."""
        delivered = sum(len(chunk) for (_, chunk), o in zip(requests, outcomes, strict=True) if o.kind == OK)
        retries = [(chunk, o) for (_, chunk), o in zip(requests, outcomes, strict=True) if o.kind == RETRY]
        refused = [(chunk, o) for (_, chunk), o in zip(requests, outcomes, strict=True) if o.kind == DATA]
        if not retries and not refused and not rejected:
            return
        retry_after = max((o.retry_after for _, o in retries if o.retry_after is not None), default=None)
        where = f" ({len(requests)} requests)" if len(requests) > 1 else ""
        if delivered == 0 and retries:
            raise RetriableError(f"{retries[0][1].reason}{where}", retry_after=retry_after)
        if delivered == 0 and refused and not rejected:
            raise BatchDataError(f"{refused[0][1].reason}{where}")
        for chunk, o in refused:
            if len(chunk) == 1:  # the request held only this record: it is the one refused
                rejected[chunk[0][0]] = o.reason
        again = sorted(pos for chunk, _ in retries for pos, _ in chunk)
        again += sorted(pos for chunk, _ in refused if len(chunk) > 1 for pos, _ in chunk)  # split by the next write
        if again:
            log.warning(
                "Some requests of the batch failed; writing only their records again.",
                extra={"pump": self.name, "batch_id": batch.id, "delivered": delivered, "again": len(again),
                       "reason": (retries or refused)[0][1].reason[:300]},
            )  # fmt: skip
        raise RejectedRecords(
            rejected, again, f"{delivered} delivered, {len(rejected)} refused, {len(again)} to write again", retry_after=retry_after
        )


def build_sink(name: str, meta: Meta, options: Options | None = None, kind: str = "http") -> HttpSink:
    """The sink, with a warning when TLS verification is off."""
    if meta.ssl_insecure_skip_verify:
        log.warning("ssl_insecure_skip_verify: the server's certificate is NOT verified.", extra={"pump": name})
    if meta.url.startswith("http:") and meta.auth.type != "none":
        log.warning("Credentials are sent over plain http://; use https://.", extra={"pump": name, "url": redact_url(meta.url)})
    return HttpSink(name, meta, options, kind)
