"""The ``elasticsearch`` sink: bulk-creates Tyk documents in Elasticsearch 7/8/9 or OpenSearch 1/2.

A write returns only when every document of the batch is indexed (or the server said which ones
it refuses), because the delivery layer acknowledges the batch in Redis right after: there is no
background bulk buffer to lose on a crash, unlike Tyk's bulk processor. Tyk's ``bulk_config``
therefore shapes the requests of one write — ``bulk_actions``/``bulk_size`` cut the batch into
``_bulk`` requests, ``workers`` sends that many at once — and ``flush_interval`` has no meaning.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Sequence
from urllib.parse import quote

import orjson

from pump.errors import RetriableError
from pump.record import Record
from pump.sinks.base import SinkBatch
from pump.sinks.elasticsearch.bulk import (
    _PLAIN_ID,
    BULK_FILTER,
    OK,
    REJECT,
    RETRY,
    Item,
    Tally,
    action_line,
    check_response,
    classify_item,
    encode_document,
    parse_bulk_response,
    server_reason,
)
from pump.sinks.elasticsearch.client import Client, ServerInfo
from pump.sinks.elasticsearch.config import TYPED_VERSIONS, Meta
from pump.sinks.elasticsearch.document import DocumentBuilder
from pump.sinks.elasticsearch.template import composable, legacy

log = logging.getLogger(__name__)

#: (batch positions of a request's documents, their outcomes, or the error of the request)
_ChunkResult = tuple[list[int], list[tuple[int, str]] | None, RetriableError | None]


class ElasticsearchSink:
    def __init__(self, name: str, meta: Meta) -> None:
        self.name = name
        self.meta = meta
        self.builder = DocumentBuilder(meta)
        self.client: Client | None = None
        self.server: ServerInfo | None = None
        #: ``_type`` for bulk lines: only for Elasticsearch < 7 (decided in ``start``).
        self.doc_type: str | None = meta.document_type if meta.version in TYPED_VERSIONS else None
        self.template_name = meta.template_name or f"pump-{meta.index_name}"
        self.max_actions = meta.bulk_config.max_actions
        self.max_bytes = meta.bulk_config.max_bytes
        self.workers = meta.bulk_config.concurrency

    # -- lifecycle ---------------------------------------------------------------------------------

    def _client(self) -> Client:
        if self.client is None:
            try:
                self.client = Client(self.meta)
            except (OSError, ValueError) as exc:  # unreadable CA / certificate / key file
                raise RetriableError(f"cannot set up TLS for Elasticsearch: {exc}") from exc
        return self.client

    async def start(self) -> None:
        client = self._client()
        self.server = await self._detect(client)
        self.doc_type = self._decide_type()
        if self.meta.index_template:
            await self._install_template(client)
        log.info(
            "Elasticsearch pump ready.",
            extra={
                "pump": self.name,
                "urls": client.shown_urls,
                "server": f"{self.server.product} {self.server.version}" if self.server else "unknown",
                "index": self.meta.index_name,
                "rolling": self.meta.rolling_index,
                "per_kind": self.meta.index_per_kind,
                "bulk": "off" if self.meta.disable_bulk else f"{self.max_actions or '-'} docs/{self.max_bytes or '-'} B x{self.workers}",
            },
        )

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await client.aclose()

    async def check(self) -> None:
        client = self._client()
        status, _, raw = await client.json("GET", "/")
        check_response(status, raw, f"GET / on {client.shown_urls}")

    async def _detect(self, client: Client) -> ServerInfo | None:
        """Ask the server what it is. A key allowed to index but not to read ``/`` is fine."""
        status, doc, raw = await client.json("GET", "/")
        if status == 403:
            log.warning(
                "Cannot read the server version (403); using the configured version.",
                extra={"pump": self.name, "version": self.meta.version or "auto", "reason": server_reason(raw)},
            )
            return None
        check_response(status, raw, "GET /")
        info = ServerInfo.from_root(doc)
        if info is None:
            log.warning("The server did not report a version; using the configured one.", extra={"pump": self.name})
        return info

    def _decide_type(self) -> str | None:
        """Send ``_type`` only to Elasticsearch < 7. The detected server wins over ``version``:
        a Tyk config saying "6" pointed at OpenSearch would otherwise have every document refused."""
        configured_typed = self.meta.version in TYPED_VERSIONS
        if self.server is None:
            return self.meta.document_type if configured_typed else None
        typed = self.server.has_mapping_types
        if self.meta.version and typed != configured_typed:
            log.warning(
                "The configured version does not match the server; following the server.",
                extra={"pump": self.name, "version": self.meta.version, "server": f"{self.server.product} {self.server.version}"},
            )
        return self.meta.document_type if typed else None

    async def _install_template(self, client: Client) -> None:
        """PUT the index template (composable where available, legacy otherwise).

        Refusals that more retries cannot fix (no privilege, a conflicting template) are logged
        and the pump carries on with dynamic mappings; an unreachable or failing server is
        retried like any outage."""
        patterns = self.builder.index_patterns()
        m = self.meta
        if self.server is not None and self.server.product == "elasticsearch" and 0 < self.server.major < 6:
            log.warning("No index template on Elasticsearch < 6; create mappings yourself.", extra={"pump": self.name})
            return
        if self.server is None or self.server.has_composable_templates:
            body = composable(patterns, m.template_priority, m.index_settings, m.extended_stats, m.decode_base64, m.string_mapping)
            status, _, raw = await client.json("PUT", f"/_index_template/{quote(self.template_name, safe='')}", body)
            if status in (404, 405) and self.server is None:
                status, raw = await self._put_legacy(client, patterns)
        else:
            status, raw = await self._put_legacy(client, patterns)
        if 200 <= status < 300:
            log.info("Index template installed.", extra={"pump": self.name, "template": self.template_name, "patterns": ",".join(patterns)})
        elif status in (400, 403):
            log.error(
                "Index template refused; new indices get dynamic mappings. Fix the cause or set index_template: false.",
                extra={"pump": self.name, "template": self.template_name, "status": status, "reason": server_reason(raw)},
            )
        else:
            check_response(status, raw, f"PUT index template {self.template_name}")

    async def _put_legacy(self, client: Client, patterns: list[str]) -> tuple[int, bytes]:
        m = self.meta
        body = legacy(patterns, m.template_priority, m.index_settings, m.extended_stats, m.decode_base64, self.doc_type, m.string_mapping)
        status, _, raw = await client.json("PUT", f"/_template/{quote(self.template_name, safe='')}", body)
        return status, raw

    # -- writing -----------------------------------------------------------------------------------

    async def write(self, batch: SinkBatch) -> None:
        if not batch.records:
            return
        client = self._client()
        tally = Tally()
        if self.meta.disable_bulk:
            await self._write_each(client, batch.records, tally)
        else:
            await self._write_bulk(client, batch.records, tally)
        if tally.retry and (tally.ok or tally.rejected):
            log.warning(
                "Some documents were refused for now; retrying only those.",
                extra={"pump": self.name, "batch_id": batch.id, "retry": len(tally.retry), "reason": tally.retry_reason[:300]},
            )
        tally.finish()

    def _items(self, records: Sequence[Record], tally: Tally) -> Iterator[Item]:
        """Encode records lazily (so encoding overlaps the requests in flight). A record that
        cannot be encoded is refused on its own instead of failing the batch."""
        build = self.builder
        doc_type = self.doc_type
        for pos, r in enumerate(records):
            try:
                index, doc_id, doc = build.entry(r)
                yield Item(pos, index, doc_id, action_line(index, doc_id, doc_type), encode_document(doc))
            except (TypeError, ValueError, OverflowError, orjson.JSONEncodeError) as exc:
                tally.add(pos, REJECT, f"cannot encode the record as JSON: {type(exc).__name__}: {exc}")

    def _requests(self, records: Sequence[Record], tally: Tally) -> Iterator[tuple[list[int], list[bytes]]]:
        """The batch cut into ``_bulk`` requests: (batch positions, NDJSON lines), at most
        ``max_actions`` documents and ``max_bytes`` bytes each (one larger document goes alone).

        The same lines as ``chunks(_items(...))`` and ``bulk_body``, without an ``Item`` per
        record: each document is one ``action\\nsource\\n`` bytes, so a request holds its lines
        once and its body is a single join of them."""
        entry, doc_type = self.builder.entry, self.doc_type
        plain, dumps = _PLAIN_ID.match, orjson.dumps
        max_actions, max_bytes = self.max_actions, self.max_bytes
        positions: list[int] = []
        lines: list[bytes] = []
        size = 0
        for pos, r in enumerate(records):
            try:
                index, doc_id, doc = entry(r)
                try:
                    source = dumps(doc)
                except orjson.JSONEncodeError:
                    source = encode_document(doc)
                if doc_type is None and plain(doc_id):
                    line = b'{"create":{"_index":"%b","_id":"%b"}}\n%b\n' % (index.encode(), doc_id.encode(), source)
                else:
                    line = action_line(index, doc_id, doc_type) + b"\n" + source + b"\n"
            except (TypeError, ValueError, OverflowError, orjson.JSONEncodeError) as exc:
                tally.add(pos, REJECT, f"cannot encode the record as JSON: {type(exc).__name__}: {exc}")
                continue
            n = len(line)
            if lines and ((max_actions and len(lines) >= max_actions) or (max_bytes and size + n > max_bytes)):
                yield positions, lines
                positions, lines, size = [], [], 0
            positions.append(pos)
            lines.append(line)
            size += n
        if lines:
            yield positions, lines

    async def _write_bulk(self, client: Client, records: Sequence[Record], tally: Tally) -> None:
        sem = asyncio.Semaphore(self.workers)
        tasks: list[asyncio.Task[_ChunkResult]] = []

        async def send(positions: list[int], lines: list[bytes]) -> _ChunkResult:
            # Only the request body is kept while it is in flight, and only positions after it:
            # the encoded documents are not held twice, nor until the whole batch is sent.
            body = b"".join(lines)
            lines.clear()
            try:
                return positions, await self._send_bulk(client, body, len(positions)), None
            except RetriableError as exc:
                return positions, None, exc
            finally:
                sem.release()

        try:
            for positions, lines in self._requests(records, tally):
                await sem.acquire()
                tasks.append(asyncio.create_task(send(positions, lines)))
                await asyncio.sleep(0)  # let it put its request on the wire before we encode the next
            results = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.gather(*tasks, return_exceptions=True)
            raise
        for positions, outcomes, error in results:
            if error is not None:
                for pos in positions:
                    tally.add(pos, RETRY, str(error))
            else:
                tally.add_positions(positions, outcomes)

    async def _send_bulk(self, client: Client, body: bytes, documents: int) -> list[tuple[int, str]] | None:
        resp = await client.request("POST", "/_bulk", content=body, params={"filter_path": BULK_FILTER}, ndjson=True)
        check_response(resp.status_code, resp.content, f"_bulk of {documents} documents ({len(body)} bytes)")
        outcomes = parse_bulk_response(resp.content, documents)
        log.debug("Bulk request done.", extra={"pump": self.name, "documents": documents, "bytes": len(body)})
        return outcomes

    async def _write_each(self, client: Client, records: Sequence[Record], tally: Tally) -> None:
        """``disable_bulk``: one create request per document, ``workers`` at a time."""
        sem = asyncio.Semaphore(self.workers)

        async def one(it: Item) -> None:
            async with sem:
                try:
                    resp = await client.request(*self._doc_request(it), content=it.body)
                except RetriableError as exc:
                    tally.add(it.pos, RETRY, str(exc))
                    return
                error = None
                if resp.status_code >= 300:
                    with contextlib.suppress(orjson.JSONDecodeError):
                        body = orjson.loads(resp.content)
                        error = body.get("error") if isinstance(body, dict) else None
                    error = error if error is not None else server_reason(resp.content)
                outcome, reason = classify_item(resp.status_code, error)
                tally.add(it.pos, outcome, reason if outcome != OK else "")

        await asyncio.gather(*(one(it) for it in self._items(records, tally)))

    def _doc_request(self, it: Item) -> tuple[str, str]:
        """Method and path creating one document (``POST`` with a server id if it has none)."""
        index, doc_id = quote(it.index, safe=""), quote(it.doc_id, safe="")
        kind = quote(self.doc_type, safe="") if self.doc_type else "_doc"
        if not doc_id:
            return "POST", f"/{index}/{kind}"
        if self.doc_type:
            return "PUT", f"/{index}/{kind}/{doc_id}/_create"
        return "PUT", f"/{index}/_create/{doc_id}"


def build_sink(name: str, meta: Meta) -> ElasticsearchSink:
    """The sink, with warnings for Tyk keys that have no effect here."""
    if meta.use_sniffing:
        log.warning("use_sniffing has no effect; list every node in elasticsearch_url.", extra={"pump": name})
    if meta.bulk_config.flush_interval:
        log.info("bulk_config.flush_interval has no effect: each batch is written before it is acknowledged.", extra={"pump": name})
    if meta.use_ssl and not any(u.startswith("https:") for u in meta.urls):
        log.warning("use_ssl is set but elasticsearch_url is http://; TLS follows the URL scheme, use https://.", extra={"pump": name})
    if meta.ssl_insecure_skip_verify:
        log.warning("ssl_insecure_skip_verify: the server's certificate is NOT verified.", extra={"pump": name})
    return ElasticsearchSink(name, meta)
