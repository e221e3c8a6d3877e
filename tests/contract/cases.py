"""The case table of the sink contract suite (``test_sink_contract.py``): one entry per sink and
backend, and the stores that read what a sink wrote back from its real server.

How to add a case (say a new ``kafka`` family)
----------------------------------------------
1. Give it a **store** (or reuse one below). ``__init__(server, tmp)`` gets the session's real
   server (``None`` for a local sink) and the test's tmp dir, and makes a place of its own there
   (a database, an index prefix, a topic…). ``pump(address)`` returns the pump as a user writes
   it in the pump file — ``{"type": …, "meta": {…}}``, or ``{"uptime_pump_config": {…}}`` for an
   uptime sink — dialling ``address`` (``host:port``) instead of the server's own, so the suite
   can point it at a closed port or at a TCP proxy it cuts; local stores ignore it. ``read(sink)``
   returns one key per record that reached the server, read with the server's own client (not
   through the sink). ``dead()`` is the pump of a place that cannot work, for local stores whose
   outage is not a closed port (``None``: the sink has no outage). ``close()`` drops the place.
2. Add a :class:`Case` to :data:`CASES`: ``id``, the ``server`` fixture, the store, which ``key``
   of a record ``read`` returns, ``at_least_once`` (why a redelivered batch is written again) if
   the sink is not idempotent, and a ``bad`` record the server refuses for good — or ``no_bad``,
   saying why the sink has none.
3. ``scripts/test tests/contract -k <id>``. A clause the sink fails is a finding: fix the sink, or
   name the clause in ``xfail`` with the reason (strict: it fails the suite once it passes).

Shapes to expect: a sink over UDP (syslog, StatsD) keeps no connection to cut — its store sets
``address = None``, its ``dead()`` is a closed UDP port, and a sink that packs a batch into one
datagram notices it one write late (``outage_seen_late`` says so; the clause checks exactly that);
a sink with a TCP mode too (StatsD's ``transport: tcp``) gets a case per transport; a sink
whose records are aggregated (StatsD, Prometheus) reads back one key per counted record (as the
aggregate stores below expand ``hits``); a store for a server that keeps everything it is sent
(Kafka, an HTTP receiver) is ``at_least_once`` unless the sink deduplicates.

Sinks are built only through the public API (``pump.sinks.build`` / ``pump.sinks.build_uptime``,
from a validated :class:`~pump.config.model.Config`), exactly as the daemon builds them.
"""

from __future__ import annotations

import csv
import io
import json
import re
import socket
import sqlite3
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

import pytest

from pump.decode import DECODERS
from pump.decode.msgpack import encode_record
from pump.record import Record, UptimeRecord
from tests import servers
from tests.helpers import T0, make_record

T = TypeVar("T")

# ----------------------------------------------------------------------------------- records


def raw_records(n: int, tag: str) -> list[Record]:
    """``n`` distinct analytics records as the delivery layer hands them to a sink: encoded the
    way the gateway does and decoded again (so each has its record id). Three APIs, one org."""
    decode = DECODERS["msgpack"]
    made = [
        make_record(path=f"/{tag}/{i}", raw_path=f"/{tag}/{i}", api_id=f"api-{tag}-{i % 3}", timestamp=T0 + timedelta(microseconds=i))
        for i in range(n)
    ]
    return [decode(encode_record(r)) for r in made]  # type: ignore[misc]


def awkward_raw(tag: str) -> Record:
    """A record a gateway can really send, with text that trips naive encoders: bytes that were
    not UTF-8 (kept by the decoder as surrogates), NUL, tabs, newlines, quotes, commas, ``;``,
    non-ASCII, and the int64 extremes Go's zero values and counters can take."""
    return make_record(
        record_id=uuid.uuid4().hex,
        path=f"/{tag}/odd/\udcff\x00\t\n\"',;é",
        raw_path=f"/{tag}/odd",
        user_agent="agent \udcfe\r\n",
        api_name='na\x00me "quoted", é',
        api_id=f"api-{tag}-odd",
        tags=["t;1", "t,2", "\udcfd"],
        raw_request="GET / HTTP/1.1\r\n\r\n\udcff",
        request_time=(1 << 63) - 1,
        content_length=-(1 << 63),
        geo_city_names={"en": "Zürich\udcff"},
    )


_GRAPHQL = {"IsGraphQL": True, "OperationType": 1, "Types": {"Query": ["user"]}, "RootFields": ["user"], "Variables": "{}"}
_MCP = {"IsMCP": True, "JSONRPCMethod": "tools/call", "PrimitiveType": "tool", "PrimitiveName": "get_weather"}


def graph_records(n: int, tag: str) -> list[Record]:
    """:func:`raw_records` as GraphQL records (what ``sql-graph*`` keep)."""
    records = raw_records(n, tag)
    for r in records:
        r.graphql_stats = dict(_GRAPHQL)
    return records


def mcp_records(n: int, tag: str) -> list[Record]:
    """:func:`raw_records` as MCP records (what ``sql-mcp`` keeps)."""
    records = raw_records(n, tag)
    for r in records:
        r.mcp_stats = dict(_MCP)
    return records


def awkward_graph(tag: str) -> Record:
    r = awkward_raw(tag)
    r.graphql_stats = {
        **_GRAPHQL,
        # (no NUL in a map key: MongoDB cannot name a field with one; in values it is fine)
        "Types": {"Q é\udcff": ["a\tb\x00"]},
        "Variables": 'v "\n\x00',
        "Errors": [{"Message": "m\udcff", "Path": [0, "x"]}],
    }
    return r


def awkward_mcp(tag: str) -> Record:
    r = awkward_raw(tag)
    r.mcp_stats = {**_MCP, "PrimitiveName": "na me\udcff\t é"}  # no NUL: it names a Mongo aggregate field
    return r


def uptime_records(n: int, tag: str) -> list[UptimeRecord]:
    """``n`` host-checker results (three URLs, one org), each with a record id as decoded ones have."""
    at = [T0 + timedelta(microseconds=i) for i in range(n)]
    return [
        UptimeRecord(
            url=f"http://{tag}.example/{i % 3}", request_time=10 + i, response_code=200, api_id="api", org_id="org-up",
            day=t.day, month=t.month, year=t.year, hour=t.hour, minute=t.minute, timestamp=t,
            expire_at=t + timedelta(days=7), record_id=uuid.uuid4().hex,
        )
        for i, t in enumerate(at)
    ]  # fmt: skip


def awkward_uptime(tag: str) -> UptimeRecord:
    [r] = uptime_records(1, tag)
    r.url = f"http://{tag}.example/odd/\udcff\x00\t\n\"',;é"
    r.request_time = (1 << 63) - 1
    return r


def _with(records: list[Any], **fields: Any) -> Any:
    r = records[0]
    for k, v in fields.items():
        setattr(r, k, v)
    r.record_id = uuid.uuid4().hex
    return r


# ------------------------------------------------------------------------------------ stores


class Store(Protocol):
    #: ``host:port`` of the real server (``None`` for a local sink: it has no address to cut).
    address: str | None

    def pump(self, address: str | None = None) -> dict[str, Any]: ...

    def read(self, sink: Any) -> list[str]: ...

    def dead(self) -> dict[str, Any] | None: ...

    def close(self) -> None: ...


def netloc(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


def redial(url: str, address: str | None) -> str:
    """``url`` with its host:port replaced by ``address`` (user, path and options kept)."""
    if address is None:
        return url
    parts = urlsplit(url)
    user = parts.netloc.rpartition("@")[0]
    return urlunsplit((parts.scheme, f"{user}@{address}" if user else address, parts.path, parts.query, parts.fragment))


def _unwritable(tmp: Path, name: str) -> str:
    """A path under a regular file: no directory can ever be created there."""
    blocker = tmp / "not-a-directory"
    blocker.write_text("")
    return str(blocker / name)


class CsvStore:
    address = None

    def __init__(self, server: servers.Server | None, tmp: Path) -> None:
        self.dir = tmp / "csv"

    def pump(self, address: str | None = None) -> dict[str, Any]:
        return {"type": "csv", "meta": {"csv_dir": str(self.dir)}}

    def read(self, sink: Any) -> list[str]:
        paths: list[str] = []
        for f in sorted(self.dir.glob("*.csv")):
            with open(f, encoding="utf-8", errors="surrogateescape", newline="") as fh:
                rows = list(csv.reader(fh))
            assert rows[0][:3] == ["Method", "Host", "Path"], f"{f.name} starts with Tyk's header"
            paths += [row[2] for row in rows[1:]]
        return paths

    def dead(self) -> dict[str, Any]:
        return {"type": "csv", "meta": {"csv_dir": _unwritable(self.dir.parent, "csv")}}

    def close(self) -> None:
        return None


class StdoutStore:
    """Standard output replaced, for the test, by a stream the store reads back (JSON lines)."""

    address = None

    def __init__(self, server: servers.Server | None, tmp: Path) -> None:
        self.out = io.BytesIO()
        self.stream = io.TextIOWrapper(self.out, encoding="utf-8", write_through=True)
        self.saved: Any = None

    def pump(self, address: str | None = None) -> dict[str, Any]:
        # Installed here, in the test's call phase: pytest's capture resets sys.stdout between phases.
        if sys.stdout is not self.stream:
            self.saved, sys.stdout = sys.stdout, self.stream
        return {"type": "stdout", "meta": {"format": "json"}}

    def read(self, sink: Any) -> list[str]:
        lines = self.out.getvalue().decode("utf-8").splitlines()
        return [json.loads(line)["tyk-analytics-record"]["path"] for line in lines]

    def dead(self) -> None:
        return None

    def close(self) -> None:
        if sys.stdout is self.stream:
            sys.stdout = self.saved


class DummyStore:
    """The dummy pump keeps nothing but its count (``written``, which its docstring promises)."""

    address = None

    def __init__(self, server: servers.Server | None, tmp: Path) -> None:
        pass

    def pump(self, address: str | None = None) -> dict[str, Any]:
        return {"type": "dummy"}

    def read(self, sink: Any) -> list[str]:
        return [""] * int(sink.written)

    def dead(self) -> None:
        return None

    def close(self) -> None:
        return None


@dataclass(frozen=True)
class SqlShape:
    """What an SQL sink writes: the pump (``type`` or uptime), and the query giving ``(key, hits)``."""

    uptime: bool
    pump_type: str
    query: str


SQL_RAW = SqlShape(False, "sql", "SELECT id, 1 FROM tyk_analytics")
SQL_AGGREGATE = SqlShape(False, "sql_aggregate", "SELECT dimension_value, counter_hits FROM tyk_aggregated WHERE dimension = 'apiid'")
SQL_GRAPH = SqlShape(False, "sql-graph", "SELECT id, 1 FROM tyk_analytics_graph")
SQL_MCP = SqlShape(False, "sql-mcp", "SELECT id, 1 FROM tyk_analytics_mcp")
SQL_GRAPH_AGGREGATE = SqlShape(
    False, "sql-graph-aggregate", "SELECT dimension_value, counter_hits FROM tyk_graph_aggregated WHERE dimension = 'apiid'"
)
SQL_MCP_AGGREGATE = SqlShape(
    False, "sql-mcp-aggregate", "SELECT dimension_value, counter_hits FROM tyk_mcp_aggregated WHERE dimension = 'apiid'"
)
SQL_UPTIME = SqlShape(True, "", "SELECT dimension_value, counter_hits FROM tyk_uptime_analytics WHERE dimension = 'url'")


class _SqlStore:
    shape: SqlShape
    backend: str
    dsn: str

    def _pump(self, dsn: str) -> dict[str, Any]:
        sql = {"type": self.backend, "connection_string": dsn}
        if self.shape.uptime:
            return {"uptime_pump_config": {"uptime_type": "sql", **sql}}
        return {"type": self.shape.pump_type, "meta": sql}

    def _rows(self) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def read(self, sink: Any) -> list[str]:
        return [str(key) for key, hits in self._rows() for _ in range(int(hits))]


class SqliteStore(_SqlStore):
    address = None

    def __init__(self, shape: SqlShape, server: servers.Server | None, tmp: Path) -> None:
        self.shape, self.backend, self.tmp = shape, "sqlite", tmp
        self.dsn = str(tmp / "pump.sqlite")

    def pump(self, address: str | None = None) -> dict[str, Any]:
        return self._pump(self.dsn)

    def _rows(self) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.dsn)
        try:
            return list(conn.execute(self.shape.query))
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise
        finally:
            conn.close()

    def dead(self) -> dict[str, Any]:
        return self._pump(_unwritable(self.tmp, "pump.sqlite"))

    def close(self) -> None:
        return None


class PostgresStore(_SqlStore):
    """A database of its own on the session's PostgreSQL, dropped at the end."""

    def __init__(self, shape: SqlShape, server: servers.Server | None, tmp: Path) -> None:
        import psycopg

        assert server is not None
        self.shape, self.backend, self.server = shape, "postgres", server
        self.name = "contract_" + uuid.uuid4().hex[:12]
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        self.dsn = server.url.rsplit("/", 1)[0] + "/" + self.name
        self.address = netloc(server.url)

    def pump(self, address: str | None = None) -> dict[str, Any]:
        return self._pump(redial(self.dsn, address))

    def _rows(self) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.dsn) as conn:
            try:
                return list(conn.execute(self.shape.query.encode()).fetchall())
            except psycopg.errors.UndefinedTable:
                return []

    def dead(self) -> None:
        return None

    def close(self) -> None:
        import psycopg

        with psycopg.connect(self.server.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


class MysqlStore(_SqlStore):
    """A database of its own on the session's MariaDB (``type: mysql``), dropped at the end."""

    def __init__(self, shape: SqlShape, server: servers.Server | None, tmp: Path) -> None:
        assert server is not None
        self.shape, self.backend, self.server = shape, "mysql", server
        self.name = "contract_" + uuid.uuid4().hex[:12]
        self._execute(f"CREATE DATABASE `{self.name}` CHARACTER SET utf8mb4")
        self.dsn = server.url.rsplit("/", 1)[0] + "/" + self.name
        self.address = netloc(server.url)

    def _execute(self, query: str, dsn: str | None = None) -> list[tuple[Any, ...]]:
        import pymysql

        from pump.sinks.sql.mysql import parse_dsn

        kwargs, _, _ = parse_dsn(dsn or self.server.url)
        with pymysql.connect(**kwargs, autocommit=True, charset="utf8mb4") as conn, conn.cursor() as cur:
            cur.execute(query)
            return list(cur.fetchall())

    def pump(self, address: str | None = None) -> dict[str, Any]:
        return self._pump(redial(self.dsn, address))

    def _rows(self) -> list[tuple[Any, ...]]:
        import pymysql

        try:
            return self._execute(self.shape.query, self.dsn)
        except pymysql.err.ProgrammingError as exc:
            if exc.args and exc.args[0] == 1146:  # no such table (yet)
                return []
            raise

    def dead(self) -> None:
        return None

    def close(self) -> None:
        self._execute(f"DROP DATABASE IF EXISTS `{self.name}`")


def sql_store(shape: SqlShape, backend: str) -> Callable[[servers.Server | None, Path], Store]:
    kind = {"postgres": PostgresStore, "mysql": MysqlStore}.get(backend, SqliteStore)
    return lambda server, tmp: kind(shape, server, tmp)


@dataclass(frozen=True)
class MongoShape:
    """What a Mongo sink writes: its pump (or uptime), extra meta, and how to read keys back."""

    uptime: bool
    pump_type: str
    meta: Mapping[str, Any]
    read: Callable[[Any], list[str]]


def _field_of(collection: str, name: str) -> Callable[[Any], list[str]]:
    return lambda db: [str(d[name]) for d in db[collection].find({}, {name: 1})]


def _selective_paths(db: Any) -> list[str]:
    names = [n for n in db.list_collection_names() if n.startswith("z_tyk_analyticz_") and "aggregate" not in n]
    return [d["path"] for n in names for d in db[n].find({}, {"path": 1})]


def _aggregate_api_hits(db: Any, prefix: str = "z_tyk_analyticz_aggregate_") -> list[str]:
    """One key per record counted in an hourly aggregate document's ``apiid`` dimension."""
    keys: list[str] = []
    for n in db.list_collection_names():
        if n.startswith(prefix):
            for doc in db[n].find({}, {"apiid": 1}):
                keys += [api for api, counter in (doc.get("apiid") or {}).items() for _ in range(int(counter["hits"]))]
    return keys


MONGO_RAW = MongoShape(False, "mongo", {"collection_name": "tyk_analytics"}, _field_of("tyk_analytics", "path"))
MONGO_SELECTIVE = MongoShape(False, "mongo-pump-selective", {}, _selective_paths)
MONGO_AGGREGATE = MongoShape(False, "mongo-pump-aggregate", {}, _aggregate_api_hits)
MONGO_GRAPH = MongoShape(False, "mongo-graph", {"collection_name": "tyk_graph"}, _field_of("tyk_graph", "path"))
MONGO_MCP = MongoShape(False, "mongo-mcp", {"collection_name": "tyk_mcp"}, _field_of("tyk_mcp", "path"))
MONGO_MCP_AGGREGATE = MongoShape(False, "mongo-mcp-aggregate", {}, lambda db: _aggregate_api_hits(db, "z_tyk_mcp_analyticz_aggregate_"))
MONGO_UPTIME = MongoShape(True, "", {"collection_name": "tyk_uptime_analytics"}, _field_of("tyk_uptime_analytics", "url"))


class MongoStore:
    """A database of its own on the session's Mongo-wire server (FerretDB), dropped at the end."""

    def __init__(self, shape: MongoShape, server: servers.Server | None, tmp: Path) -> None:
        from pymongo import MongoClient

        assert server is not None
        self.shape = shape
        name = "contract_" + uuid.uuid4().hex[:12]
        parts = urlsplit(server.url)
        self.url = urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))
        self.address = netloc(server.url)
        self.client: Any = MongoClient(self.url, tz_aware=True)
        self.db = self.client[name]

    def pump(self, address: str | None = None) -> dict[str, Any]:
        url = redial(self.url, address)
        if self.shape.uptime:
            return {"uptime_pump_config": {"uptime_type": "mongo", "mongo_url": url, **self.shape.meta}}
        # ``timeout`` bounds pymongo's server selection, so an outage is reported in seconds.
        return {"type": self.shape.pump_type, "timeout": 2, "meta": {"mongo_url": url, **self.shape.meta}}

    def read(self, sink: Any) -> list[str]:
        return self.shape.read(self.db)

    def dead(self) -> None:
        return None

    def close(self) -> None:
        self.client.drop_database(self.db.name)
        self.client.close()


class ElasticStore:
    """Indices of its own (a unique prefix) on the session's OpenSearch or Elasticsearch 7 node."""

    def __init__(self, server: servers.Server | None, tmp: Path) -> None:
        import httpx

        assert server is not None
        self.url = server.url
        self.address = netloc(server.url)
        self.index = f"contract-{uuid.uuid4().hex[:12]}"
        self.http = httpx.Client(base_url=server.url, timeout=60)

    def pump(self, address: str | None = None) -> dict[str, Any]:
        return {"type": "elasticsearch", "meta": {"elasticsearch_url": redial(self.url, address), "index_name": self.index}}

    def read(self, sink: Any) -> list[str]:
        assert self.http.post(f"/{self.index}*/_refresh").status_code == 200
        resp = self.http.post(f"/{self.index}*/_search", json={"size": 10000, "_source": False, "query": {"match_all": {}}})
        assert resp.status_code == 200, resp.text
        return [hit["_id"] for hit in resp.json()["hits"]["hits"]]

    def dead(self) -> None:
        return None

    def close(self) -> None:
        self.http.delete(f"/{self.index}*", params={"expand_wildcards": "all"})
        self.http.delete(f"/_index_template/pump-{self.index}")
        self.http.delete(f"/_template/pump-{self.index}")
        self.http.close()


class HttpStore:
    """A path of its own on the session's HTTP receiver, which answers 400 to any request whose
    body carries :data:`REFUSED` — as a collector refuses a record it cannot take."""

    def __init__(self, server: servers.Server | None, tmp: Path) -> None:
        from tests.servers.http_receiver import HttpReceiver

        assert server is not None
        self.receiver = HttpReceiver(server)
        self.path = f"/contract-{uuid.uuid4().hex[:12]}"
        self.url = server.url.rstrip("/") + self.path
        self.address = netloc(server.url)
        self.rule = self.receiver.fail(400, path=self.path, body_contains=REFUSED, body='{"error": "refused"}')

    def pump(self, address: str | None = None) -> dict[str, Any]:
        return {"type": "http", "meta": {"url": redial(self.url, address), "connect_timeout": 3, "read_timeout": 10}}

    def read(self, sink: Any) -> list[str]:
        """The records of every request the receiver answered 2xx (Tyk's record JSON, one a line)."""
        done = [r for r in self.receiver.requests(path=self.path) if 200 <= r.status < 300]
        return [doc["path"] for r in done for doc in r.ndjson()]

    def dead(self) -> None:
        return None

    def close(self) -> None:
        self.receiver.clear_rules()
        self.receiver.close()


class LogzioStore(HttpStore):
    """``type: logzio`` on the same receiver: Logz.io's bulk path (``<url>/?token=…``) under a path
    of its own; Tyk's Logz.io document keeps the path as ``request_uri``."""

    def __init__(self, server: servers.Server | None, tmp: Path) -> None:
        super().__init__(server, tmp)
        self.receiver.clear_rules()
        self.rule = self.receiver.fail(400, path=self.path + "/", body_contains=REFUSED, body='{"error": "refused"}')

    def pump(self, address: str | None = None) -> dict[str, Any]:
        meta = {"token": "contract-token", "url": redial(self.url, address), "connect_timeout": 3, "read_timeout": 10}
        return {"type": "logzio", "meta": meta}

    def read(self, sink: Any) -> list[str]:
        done = [r for r in self.receiver.requests(path=self.path + "/") if 200 <= r.status < 300 and r.query == "token=contract-token"]
        return [doc["request_uri"] for r in done for doc in r.ndjson()]


class PrometheusStore:
    """The sink is the server: it serves the metrics on a port of its own, scraped back over HTTP.
    A record counts once in ``tyk_http_status{code, api}``; ``read`` gives one API id per count."""

    address = None

    def __init__(self, server: servers.Server | None, tmp: Path) -> None:
        self.port = servers.free_port()
        self.blocker: socket.socket | None = None

    def pump(self, address: str | None = None) -> dict[str, Any]:
        return self._pump(self.port)

    def _pump(self, port: int) -> dict[str, Any]:
        return {"type": "prometheus", "meta": {"listen_address": f"127.0.0.1:{port}"}}

    def read(self, sink: Any) -> list[str]:
        import httpx

        text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=10).text
        keys: list[str] = []
        for line in text.splitlines():
            if line.startswith("tyk_http_status{"):
                labels, _, value = line.rpartition(" ")
                api = re.search(r'api="([^"]*)"', labels)
                assert api is not None, line
                keys += [api.group(1)] * int(float(value))
        return keys

    def dead(self) -> dict[str, Any]:
        """A listen address another process holds."""
        self.blocker = socket.socket()
        self.blocker.bind(("127.0.0.1", 0))
        self.blocker.listen()
        return self._pump(self.blocker.getsockname()[1])

    def close(self) -> None:
        if self.blocker is not None:
            self.blocker.close()


def settled(read: Callable[[], list[T]], quiet: float = 0.6, timeout: float = 20.0) -> list[T]:
    """``read()`` once what it returns has stopped growing for ``quiet`` seconds: for servers that
    store what they were sent a moment after the sink's write returned (a consumer's view of a
    topic, a syslog receiver's file)."""
    found = read()
    deadline = time.monotonic() + timeout
    still_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = read()
        if len(now) != len(found):
            found, still_since = now, time.monotonic()
        elif time.monotonic() - still_since >= quiet:
            break
    return found


class KafkaStore:
    """A topic of its own on the session's broker; read back by a consumer from the beginning.

    ``address`` is None: a Kafka client dials the brokers the bootstrap server advertises, not the
    address it was given, so a proxy in front of the bootstrap address cannot cut its connection."""

    address = None

    def __init__(self, server: servers.Server | None, tmp: Path) -> None:
        assert server is not None
        self.bootstrap = server.url
        self.topic = f"contract-{uuid.uuid4().hex[:12]}"

    def _pump(self, broker: str) -> dict[str, Any]:
        meta = {"broker": [broker], "topic": self.topic, "timeout": 2, "delivery_timeout": 5}
        return {"type": "kafka", "meta": meta}

    def pump(self, address: str | None = None) -> dict[str, Any]:
        return self._pump(address or self.bootstrap)

    def read(self, sink: Any) -> list[str]:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"contract-{uuid.uuid4().hex[:8]}"})
        try:
            try:
                topic = consumer.list_topics(self.topic, timeout=10).topics[self.topic]
            except KafkaException:
                return []
            if topic.error is not None:
                return []  # not created yet: nothing was written
            consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in topic.partitions])
            messages: list[str] = []

            def poll() -> list[str]:
                for m in consumer.consume(1000, 0.2):
                    assert m.error() is None, m.error()
                    messages.append(json.loads(m.value())["path"])
                return list(messages)

            return settled(poll, quiet=1.0)
        finally:
            consumer.close()

    def dead(self) -> dict[str, Any]:
        return self._pump(closed_port())

    def close(self) -> None:
        return None


class SyslogStore:
    """Messages with an APP-NAME of its own on the session's rsyslog (``format: json``), read from
    the file rsyslog writes. Over UDP there is no connection (``address`` None): a closed port
    is noticed only through the ICMP error a following datagram gets."""

    def __init__(self, transport: str, server: servers.Server | None, tmp: Path) -> None:
        assert server is not None
        self.server, self.transport = server, transport
        self.tag = f"contract-{uuid.uuid4().hex[:10]}"
        self.address = server.url if transport == "tcp" else None

    def _pump(self, addr: str) -> dict[str, Any]:
        meta = {"transport": self.transport, "network_addr": addr, "tag": self.tag, "log_level": 134, "format": "json", "timeout": 3}
        if self.transport == "tcp":
            meta["max_message_bytes"] = SYSLOG_MAX
        return {"type": "syslog", "meta": meta}

    def pump(self, address: str | None = None) -> dict[str, Any]:
        return self._pump(address or self.server.url)

    def read(self, sink: Any) -> list[str]:
        from tests.servers import rsyslog

        def mine() -> list[str]:
            return [json.loads(str(m["msg"]))["path"] for m in rsyslog.read_messages(self.server) if m.get("app_name") == self.tag]

        return settled(mine)

    def dead(self) -> dict[str, Any]:
        return self._pump(closed_port(udp=self.transport == "udp"))

    def close(self) -> None:
        return None


class StatsdStore:
    """Metrics with a prefix of their own (``prefix`` for StatsD, ``namespace`` for DogStatsD) on the
    session's statsd_exporter, scraped back: each record is one observation of a summary, so
    ``read`` gives one key per ``_count``. StatsD keys: the API id tagged into the metric name
    (statsd_exporter turns every character Prometheus cannot name into ``_``,
    :func:`statsd_key`); DogStatsD keys: the ``path`` label.

    Over TCP the suite's proxy sits in front of statsd_exporter's TCP listener; over UDP there is
    no connection (``address`` None) and a dead server is a closed UDP port (``dead``)."""

    def __init__(self, kind: str, transport: str, server: servers.Server | None, tmp: Path) -> None:
        assert server is not None
        self.server, self.kind, self.transport = server, kind, transport
        self.name = f"contract{uuid.uuid4().hex[:12]}"
        self.address = server.url if transport == "tcp" else None

    def _pump(self, addr: str) -> dict[str, Any]:
        meta: dict[str, Any] = {"address": addr, "transport": self.transport, "send_timeout": 3}
        if self.kind == "statsd":
            meta.update(prefix=self.name, tags=["api_id"])
        else:
            meta.update(namespace=self.name)
        return {"type": self.kind, "meta": meta}

    def pump(self, address: str | None = None) -> dict[str, Any]:
        return self._pump(address or self.server.url)

    def read(self, sink: Any) -> list[str]:
        from tests.servers import statsd_exporter

        def mine() -> list[str]:
            keys: list[str] = []
            for (name, labels), value in statsd_exporter.samples(self.server).items():
                if not (name.startswith(f"{self.name}_request_time") and name.endswith("_count")):
                    continue
                if self.kind == "statsd":
                    key = name.removeprefix(f"{self.name}_request_time_").removesuffix("_count")
                else:
                    key = dict(labels).get("path", "")
                keys += [key] * int(value)
            return keys

        return settled(mine)

    def dead(self) -> dict[str, Any] | None:
        return self._pump(closed_port(udp=True)) if self.transport == "udp" else None

    def close(self) -> None:
        return None


def statsd_key(r: Any) -> str:
    """The API id as it ends a StatsD metric name in statsd_exporter's scrape (Tyk lower-cases it;
    the exporter writes ``_`` for each character a Prometheus name cannot hold)."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", str(r.api_id).lower())


#: The longest syslog message the TCP case accepts (UDP's limit is 65,000 bytes by default).
SYSLOG_MAX = 16384


def closed_port(udp: bool = False) -> str:
    """``127.0.0.1:PORT`` where nothing listens."""
    return f"127.0.0.1:{servers.free_port(udp=udp)}"


#: What makes the HTTP receiver refuse a request (see :class:`HttpStore`).
REFUSED = "contract-refuse-this-record"


# ------------------------------------------------------------------------------------- cases


def by_path(r: Any) -> str:
    return str(r.path)


def by_id(r: Any) -> str:
    return str(r.record_id)


def by_api(r: Any) -> str:
    return str(r.api_id)


def by_url(r: Any) -> str:
    return str(r.url)


def uncounted(r: Any) -> str:
    return ""


@dataclass(frozen=True)
class Case:
    """One sink (on one backend) and what the contract may expect of it."""

    id: str
    #: Session fixture of the real server (``None``: a local sink).
    server: str | None
    store: Callable[[servers.Server | None, Path], Store]
    #: What ``store.read`` returns for each record (path, record id, API id, URL…).
    key: Callable[[Any], str]
    #: Why a redelivered batch is written again; empty = the sink is idempotent.
    at_least_once: str = ""
    #: A record the server refuses for good (one call per use).
    bad: Callable[[], Any] | None = None
    #: Why the sink has no such record (when ``bad`` is None).
    no_bad: str = ""
    #: Why the sink has no outage at all (when neither a server nor ``store.dead()`` exists).
    no_outage: str = ""
    #: Why ``check()`` cannot tell a dead server (UDP: nothing answers a datagram).
    check_blind: str = ""
    #: Why a dead server fails only a *later* write, not the first: a UDP sink whose first write is
    #: one datagram gets the ICMP "port unreachable" after that send returned. The clause then
    #: requires exactly that — the first write returns (its records are lost, as UDP loses them),
    #: the next one raises ``RetriableError``.
    outage_seen_late: str = ""
    records: Callable[[int, str], list[Any]] = raw_records
    awkward: Callable[[str], Any] = awkward_raw
    #: Contract clause (test function name without ``test_``) → why this sink fails it today.
    xfail: Mapping[str, str] = field(default_factory=dict)

    @property
    def marks(self) -> list[pytest.MarkDecorator]:
        return [pytest.mark.integration] if self.server else []


def _sql_cases(shape: SqlShape, name: str, **common: Any) -> list[Case]:
    return [
        Case(f"{name}-sqlite", None, sql_store(shape, "sqlite"), **common),
        Case(f"{name}-postgres", "postgres_server", sql_store(shape, "postgres"), **common),
        Case(f"{name}-mysql", "mysql_server", sql_store(shape, "mysql"), **common),
    ]


def _mongo(shape: MongoShape) -> Callable[[servers.Server | None, Path], Store]:
    return lambda server, tmp: MongoStore(shape, server, tmp)


UDP_BLIND = (
    "nothing answers a UDP datagram: a closed port shows only as the ICMP error of a following send, which a write "
    "sees (test_outage_at_start_is_retriable) and a check has none of"
)

NO_TEXT_LIMIT = "every value is written as text and any text is accepted (invalid UTF-8 kept byte for byte)"

CASES: list[Case] = [
    Case(
        "csv", None, CsvStore, by_path,
        at_least_once="a file has no ids: a batch redelivered after a crash is appended again (documented in csv.py)",
        no_bad=f"CSV has no bad record: {NO_TEXT_LIMIT}",
    ),
    Case(
        "stdout", None, StdoutStore, by_path,
        at_least_once="a stream has no ids: a redelivered batch is printed again (documented in stdout.py)",
        no_bad="stdout has no bad record: every record is printed (text that is not UTF-8 as U+FFFD, as Go's encoder does)",
        no_outage="stdout has no server; the stream is the process's own",
    ),
    Case(
        "dummy", None, DummyStore, uncounted,
        at_least_once="the dummy pump only counts what it is given: a redelivered batch is counted again",
        no_bad="the dummy pump accepts anything: it only counts records",
        no_outage="the dummy pump talks to nothing",
    ),
    *_sql_cases(SQL_RAW, "sql", key=by_id, bad=lambda: _with(raw_records(1, "bad"), content_length=1 << 63)),
    *_sql_cases(SQL_AGGREGATE, "sql_aggregate", key=by_api, bad=lambda: _with(raw_records(1, "bad"), latency_total=1 << 63)),
    *_sql_cases(
        SQL_GRAPH, "sql-graph", key=by_id, records=graph_records, awkward=awkward_graph,
        bad=lambda: _with(graph_records(1, "bad"), content_length=1 << 63),
    ),
    *_sql_cases(
        SQL_MCP, "sql-mcp", key=by_id, records=mcp_records, awkward=awkward_mcp,
        bad=lambda: _with(mcp_records(1, "bad"), content_length=1 << 63),
    ),
    *_sql_cases(
        SQL_GRAPH_AGGREGATE, "sql-graph-aggregate", key=by_api, records=graph_records, awkward=awkward_graph,
        bad=lambda: _with(graph_records(1, "bad"), latency_total=1 << 63),
    ),
    *_sql_cases(
        SQL_MCP_AGGREGATE, "sql-mcp-aggregate", key=by_api, records=mcp_records, awkward=awkward_mcp,
        bad=lambda: _with(mcp_records(1, "bad"), latency_total=1 << 63),
    ),
    *_sql_cases(
        SQL_UPTIME, "uptime-sql", key=by_url, records=uptime_records, awkward=awkward_uptime,
        no_bad="uptime SQL has no bad record: every check becomes counters (request times summed as doubles) and a "
        "row id too long to index is skipped with a warning (sql_aggregate.MAX_ID_LENGTH), never refused",
    ),
    # A key BSON cannot hold. (A document over 16 MiB is refused by MongoDB but stored by FerretDB.)
    Case("mongo", "mongo_server", _mongo(MONGO_RAW), by_path, bad=lambda: _with(raw_records(1, "bad"), geo_city_names={"e\x00n": "x"})),
    Case(
        "mongo-graph", "mongo_server", _mongo(MONGO_GRAPH), by_path, records=graph_records, awkward=awkward_graph,
        bad=lambda: _with(graph_records(1, "bad"), geo_city_names={"e\x00n": "x"}),
    ),
    Case(
        "mongo-mcp", "mongo_server", _mongo(MONGO_MCP), by_path, records=mcp_records, awkward=awkward_mcp,
        bad=lambda: _with(mcp_records(1, "bad"), geo_city_names={"e\x00n": "x"}),
    ),
    Case(
        "mongo-mcp-aggregate", "mongo_server", _mongo(MONGO_MCP_AGGREGATE), by_api, records=mcp_records, awkward=awkward_mcp,
        bad=lambda: _with(mcp_records(1, "bad"), org_id="b$d"),
    ),
    # A collection MongoDB cannot name: z_tyk_analyticz_bad$org.
    Case("mongo-pump-selective", "mongo_server", _mongo(MONGO_SELECTIVE), by_path, bad=lambda: _with(raw_records(1, "bad"), org_id="b$d")),
    Case("mongo-pump-aggregate", "mongo_server", _mongo(MONGO_AGGREGATE), by_api, bad=lambda: _with(raw_records(1, "bad"), tags=["$bad"])),
    Case(
        "uptime-mongo", "mongo_server", _mongo(MONGO_UPTIME), by_url, records=uptime_records, awkward=awkward_uptime,
        no_bad="uptime Mongo has no bad record here: its documents have fixed keys and any value fits; only a document "
        "over 16 MiB is refused, by MongoDB, and FerretDB (the test server) stores it",
    ),
    Case(
        "http", "http_receiver_server", HttpStore, by_path,
        at_least_once="an HTTP endpoint keeps what it is sent: a redelivered batch is POSTed again (docs/sinks/http.md)",
        bad=lambda: _with(raw_records(1, "bad"), api_name=REFUSED),  # the receiver answers 400, as a collector does
    ),
    Case(
        "logzio", "http_receiver_server", LogzioStore, by_path,
        at_least_once="Logz.io's listener keeps what it is sent: a redelivered batch is POSTed again",
        bad=lambda: _with(raw_records(1, "bad"), api_name=REFUSED),  # the receiver answers 400, as the listener does
    ),
    Case(
        "prometheus", None, PrometheusStore, by_api,  # a new process starts from zero: what it counts is the redelivery, once
        no_bad="Prometheus has no bad record: every record becomes label values and counts; label sets over "
        "max_series_per_metric are dropped and counted (pump_prometheus_dropped_series_total), never refused",
    ),
    Case(
        "kafka", "kafka_server", KafkaStore, by_path,
        at_least_once="a redelivered batch is produced again (same keys: a consumer or a compacted topic drops the copies)",
        bad=lambda: _with(raw_records(1, "bad"), raw_request="x" * (2 << 20)),  # over message.max.bytes: MSG_SIZE_TOO_LARGE
    ),
    *(
        Case(
            f"syslog-{transport}", "syslog_server", lambda server, tmp, t=transport: SyslogStore(t, server, tmp), by_path,
            at_least_once="syslog has no acknowledgement: a redelivered batch is sent again (the record id is in the structured data)",
            bad=lambda size=size: _with(raw_records(1, "bad"), raw_request="x" * size),  # over max_message_bytes
            check_blind="" if transport == "tcp" else UDP_BLIND,
        )
        for transport, size in (("tcp", SYSLOG_MAX), ("udp", 70_000))
    ),
    *(
        Case(
            f"{kind}-{transport}", "statsd_server", lambda server, tmp, k=kind, t=transport: StatsdStore(k, t, server, tmp),
            statsd_key if kind == "statsd" else by_path,
            at_least_once="StatsD has no ids or acknowledgement: a redelivered batch is counted again by the receiver",
            no_bad="a StatsD receiver refuses nothing: it drops a line it cannot parse without answering (statsd_exporter "
            "only counts and logs it), and every record becomes a well-formed line",
            check_blind="" if transport == "tcp" else UDP_BLIND,
            outage_seen_late="" if transport == "tcp" else "a batch of a few lines is packed into one datagram: nothing "
            "answers it, and the ICMP port unreachable it gets back fails the next send, so the first write into a dead "
            "port returns (its records are lost, as StatsD over UDP loses them; docs/sinks/statsd.md) and the next write "
            "raises RetriableError and is retried; over TCP (transport: tcp) the first write fails",
        )
        for kind in ("statsd", "dogstatsd")
        for transport in ("tcp", "udp")
    ),
    *(
        Case(f"elasticsearch-{kind}", fixture, ElasticStore, by_id, bad=lambda: _with(raw_records(1, "bad"), response_code=1 << 40))
        for kind, fixture in (("opensearch", "elastic_server"), ("es7", "elastic7_server"))
    ),
]  # fmt: skip
