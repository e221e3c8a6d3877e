"""Elasticsearch pump, whole pipeline, on real nodes: OpenSearch 2.19.1 and Elasticsearch 7.10.2.

Go-format msgpack records are pushed into a real Redis, ``python -m pump run --once`` drains them
into the real node, and the documents are searched back. Both nodes are started once per session
by tests/servers (or taken from ``PUMP_TEST_ELASTIC_URL`` / ``PUMP_TEST_ELASTIC7_URL``); every test
writes to indices of its own, removed afterwards.

Outages are real too: a closed port, or a TCP pass-through to the node that refuses connections
until it is switched on (also used to put real TLS in front of the node).
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import socket
import ssl
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from pump.decode import msgpack as mp
from pump.record import Record
from pump.sinks.elasticsearch.config import Meta
from pump.sinks.elasticsearch.document import DocumentBuilder
from tests import servers
from tests.helpers import T0, client, list_lengths, make_record, msgpack_payloads, push, run_once, run_pump, write_config

pytestmark = pytest.mark.integration

PUMP = "es"
DEADLETTER = f"pump:deadletter:{PUMP}"


# --------------------------------------------------------------------------------------- fixtures


@dataclass
class Cluster:
    """A node under test and a plain HTTP client to look at what the pump wrote."""

    kind: str
    url: str
    http: httpx.Client
    prefix: str

    def refresh(self) -> None:
        assert self.http.post("/_refresh").status_code == 200

    def hits(self, pattern: str) -> list[dict[str, Any]]:
        self.refresh()
        resp = self.http.post(f"/{pattern}/_search", json={"size": 10000, "version": True, "query": {"match_all": {}}})
        assert resp.status_code == 200, resp.text
        return list(resp.json()["hits"]["hits"])

    def count(self, pattern: str) -> int:
        self.refresh()
        resp = self.http.get(f"/{pattern}/_count")
        if resp.status_code == 404:
            return 0
        assert resp.status_code == 200, resp.text
        return int(resp.json()["count"])

    def index_counts(self) -> dict[str, int]:
        self.refresh()
        resp = self.http.get(f"/_cat/indices/{self.prefix}*", params={"format": "json", "h": "index,docs.count"})
        assert resp.status_code == 200, resp.text
        return {row["index"]: int(row["docs.count"]) for row in resp.json()}

    def properties(self, index: str) -> dict[str, Any]:
        resp = self.http.get(f"/{index}/_mapping")
        assert resp.status_code == 200, resp.text
        return dict(resp.json()[index]["mappings"]["properties"])


@pytest.fixture(params=["opensearch", "elasticsearch7"])
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    server: servers.Server = request.getfixturevalue("elastic_server" if request.param == "opensearch" else "elastic7_server")
    prefix = f"pit-{uuid.uuid4().hex[:12]}"
    with httpx.Client(base_url=server.url, timeout=60) as http:
        c = Cluster(request.param, server.url, http, prefix)
        try:
            yield c
        finally:
            http.delete(f"/{prefix}*", params={"expand_wildcards": "all"})
            http.delete(f"/_index_template/pump-{prefix}")


def es_pump(url: str, index: str, **meta: Any) -> dict[str, Any]:
    return {PUMP: {"type": "elasticsearch", "meta": {"elasticsearch_url": url, "index_name": index, **meta}}}


def run(tmp_path: Path, redis_url: str, pumps: dict[str, Any], name: str = "pump.json", **top: Any) -> subprocess.CompletedProcess[str]:
    proc = run_once(write_config(tmp_path / name, redis_url, pumps, **top))
    return proc


def deadletters(redis_url: str) -> list[dict[str, Any]]:
    r = client(redis_url)
    try:
        return [json.loads(raw) for raw in r.lrange(DEADLETTER, 0, -1)]
    finally:
        r.close()


def ids_of(payloads: list[bytes]) -> set[str]:
    return {mp.record_id(p) for p in payloads}


def day(d: int, i: int, **fields: Any) -> Record:
    """A record ``d`` days after T0, distinct by ``i``."""
    return make_record(path=f"/d{d}/{i}", raw_path=f"/d{d}/{i}", timestamp=T0 + timedelta(days=d, microseconds=i), **fields)


def ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, proc.stderr[-4000:]


# ------------------------------------------------------------------------------ the whole pipeline


def test_pipeline_counts_ids_documents_mappings_and_rolling_indices(cluster: Cluster, redis_url: str, tmp_path: Path) -> None:
    records = [day(0, i) for i in range(40)] + [day(1, i, response_code=404) for i in range(25)]
    records += [day(2, i, response_code=429) for i in range(10)]
    records.append(day(0, 99, geo_location_latitude=51.5085, geo_location_longitude=-0.1257, geo_country_iso_code="GB"))
    payloads = msgpack_payloads(records)
    push(redis_url, payloads)

    ok(run(tmp_path, redis_url, es_pump(cluster.url, cluster.prefix, rolling_index=True)))

    p = cluster.prefix
    assert cluster.index_counts() == {f"{p}-2024.01.15": 41, f"{p}-2024.01.16": 25, f"{p}-2024.01.17": 10}
    hits = cluster.hits(f"{p}-*")
    assert {h["_id"] for h in hits} == ids_of(payloads)
    assert all(h["_version"] == 1 for h in hits)
    assert deadletters(redis_url) == []
    assert list_lengths(redis_url) == {}

    # The stored document is exactly what the builder makes of the decoded record (Tyk's fields + extras).
    builder = DocumentBuilder(Meta.model_validate({"index_name": p, "rolling_index": True}))
    by_id = {h["_id"]: h for h in hits}
    for raw in payloads[::17]:
        rec = mp.decode_record(raw)
        hit = by_id[rec.record_id]
        assert hit["_index"] == builder.index_for(rec)
        assert hit["_source"] == builder.document(rec)

    # Mappings come from the template: keyword ids, date, numbers, geo point.
    props = cluster.properties(f"{p}-2024.01.16")
    for name in ("api_id", "org_id", "api_key", "http_method", "request_uri", "tags", "event_kind"):
        assert props[name]["type"] == "keyword", name
    assert props["@timestamp"]["type"] == "date"
    assert props["response_code"]["type"] == "integer"
    for name in ("request_time_ms", "content_length", "latency_total_ms", "latency_upstream_ms"):
        assert props[name]["type"] == "long", name
    assert props["geo_location"]["type"] == "geo_point"

    # ... and they work: a terms filter on an id, a date range, a geo-distance query.
    cluster.refresh()
    resp = cluster.http.post(
        f"/{p}-*/_count",
        json={
            "query": {
                "bool": {
                    "filter": [{"term": {"api_id": "727dad853a8a45f64ab981154d1ffdad"}}, {"range": {"@timestamp": {"gte": "2024-01-16"}}}]
                }
            }
        },
    )
    assert resp.json()["count"] == 35
    near = {"query": {"geo_distance": {"distance": "10km", "geo_location": {"lat": 51.5, "lon": -0.12}}}}
    assert cluster.http.post(f"/{p}-*/_count", json=near).json()["count"] == 1


def test_redelivery_of_the_same_payload_bytes_writes_no_duplicate(cluster: Cluster, redis_url: str, tmp_path: Path) -> None:
    payloads = msgpack_payloads([day(0, i) for i in range(30)])
    push(redis_url, payloads + payloads[:5])  # duplicates inside one batch too
    ok(run(tmp_path, redis_url, es_pump(cluster.url, cluster.prefix)))
    assert cluster.count(cluster.prefix) == 30

    push(redis_url, payloads)  # the gateway list delivers the very same bytes again
    ok(run(tmp_path, redis_url, es_pump(cluster.url, cluster.prefix)))

    hits = cluster.hits(cluster.prefix)
    assert len(hits) == 30
    assert {h["_id"] for h in hits} == ids_of(payloads)
    assert all(h["_version"] == 1 for h in hits), "a redelivered document must not be overwritten either"
    assert deadletters(redis_url) == []


def test_mapping_error_record_is_dead_lettered_while_its_batch_mates_are_indexed(cluster: Cluster, redis_url: str, tmp_path: Path) -> None:
    index = cluster.prefix
    # An index whose api_version is numeric: "v2-beta" cannot be parsed into it.
    resp = cluster.http.put(f"/{index}", json={"mappings": {"properties": {"api_version": {"type": "long"}}}})
    assert resp.status_code == 200, resp.text
    good = [day(0, i, api_version="2") for i in range(20)]
    bad = day(0, 500, api_version="v2-beta")
    payloads = msgpack_payloads([*good[:10], bad, *good[10:]])
    push(redis_url, payloads)

    ok(run(tmp_path, redis_url, es_pump(cluster.url, index)))

    bad_raw = payloads[10]
    assert {h["_id"] for h in cluster.hits(index)} == ids_of(payloads) - {mp.record_id(bad_raw)}
    entries = deadletters(redis_url)
    assert len(entries) == 1
    entry = entries[0]
    assert entry["record_id"] == mp.record_id(bad_raw)
    assert entry["pump"] == PUMP
    assert entry["reason"].startswith("400 mapper_parsing_exception")
    assert "[api_version]" in entry["reason"]
    assert base64.b64decode(entry["payload"]) == bad_raw


def test_one_index_per_kind_and_mcp_index(cluster: Cluster, redis_url: str, tmp_path: Path) -> None:
    p = cluster.prefix
    mcp = {"IsMCP": True, "JSONRPCMethod": "tools/call", "PrimitiveType": "tool", "PrimitiveName": "weather"}
    codes = [200] * 5 + [404] * 3 + [500] * 2 + [429] * 4
    records = [day(0, i, response_code=c) for i, c in enumerate(codes)] + [day(0, 100 + i, mcp_stats=mcp) for i in range(2)]
    push(redis_url, msgpack_payloads(records))

    ok(run(tmp_path, redis_url, es_pump(cluster.url, p, index_per_kind=True, mcp_index_name=f"{p}-mcp")))

    assert cluster.index_counts() == {f"{p}_requests": 5, f"{p}_errors": 5, f"{p}_throttled": 4, f"{p}-mcp_requests": 2}
    assert {h["_source"]["response_code"] for h in cluster.hits(f"{p}_throttled")} == {429}
    mcp_doc = cluster.hits(f"{p}-mcp_requests")[0]["_source"]
    assert (mcp_doc["mcp_method"], mcp_doc["mcp_primitive_name"]) == ("tools/call", "weather")
    for index in (f"{p}_throttled", f"{p}-mcp_requests"):
        assert cluster.properties(index)["api_id"]["type"] == "keyword"


def test_string_mappings_keep_tyks_keyword_subfields_working(cluster: Cluster, redis_url: str, tmp_path: Path) -> None:
    """Kibana objects made on Tyk's indices query ``api_id.keyword`` (Tyk's dynamic mapping):
    a term query on it and a match on ``api_id`` find the documents with the default mapping and
    with ``string_mapping: tyk``; ``keyword`` is the earlier mapping, without the subfield."""
    p = cluster.prefix
    api_id = "727dad853a8a45f64ab981154d1ffdad"
    records = [day(0, i) for i in range(7)]
    tag = records[0].tags[0]
    push(redis_url, msgpack_payloads(records))
    modes = ("multi", "tyk", "keyword")
    pumps = {
        f"es_{m}": {"type": "elasticsearch", "meta": {"elasticsearch_url": cluster.url, "index_name": f"{p}-{m}", "string_mapping": m}}
        for m in modes
    }
    del pumps["es_multi"]["meta"]["string_mapping"]  # the default
    try:
        ok(run(tmp_path, redis_url, pumps))
        cluster.refresh()

        def count(mode: str, query: dict[str, Any]) -> int:
            resp = cluster.http.post(f"/{p}-{mode}/_count", json={"query": query})
            assert resp.status_code == 200, resp.text
            return int(resp.json()["count"])

        for mode in ("multi", "tyk"):
            assert count(mode, {"term": {"api_id.keyword": api_id}}) == 7, mode
            assert count(mode, {"match": {"api_id": api_id}}) == 7, mode
            assert count(mode, {"term": {"tags.keyword": tag}}) == 7, mode
            aggs = {"size": 0, "aggs": {"apis": {"terms": {"field": "api_id.keyword"}}}}
            buckets = cluster.http.post(f"/{p}-{mode}/_search", json=aggs).json()["aggregations"]["apis"]["buckets"]
            assert buckets == [{"key": api_id, "doc_count": 7}], mode
        assert count("multi", {"term": {"api_id": api_id}}) == 7  # our keyword field is still there
        assert cluster.properties(f"{p}-multi")["api_id"]["type"] == "keyword"
        assert cluster.properties(f"{p}-tyk")["api_id"]["type"] == "text"
        assert count("tyk", {"match": {"api_name": "users"}}) == 7  # word-level match, as on Tyk's indices
        assert count("multi", {"match": {"api_name": "users"}}) == 0  # a keyword matches whole values only
        assert count("keyword", {"term": {"api_id": api_id}}) == 7
        assert count("keyword", {"term": {"api_id.keyword": api_id}}) == 0
        assert "fields" not in cluster.properties(f"{p}-keyword")["api_id"]
    finally:
        for mode in modes:
            cluster.http.delete(f"/_index_template/pump-{p}-{mode}")
            cluster.http.delete(f"/_template/pump-{p}-{mode}")


def test_generate_id_gives_tyks_id_and_extended_stats_decoded(cluster: Cluster, redis_url: str, tmp_path: Path) -> None:
    raw_request = base64.b64encode(b"GET /users/42 HTTP/1.1\r\nHost: api.example.com\r\n\r\n").decode()
    record = make_record(raw_request=raw_request, user_agent="curl/8.4.0")  # the first Go test vector
    push(redis_url, msgpack_payloads([record]))
    pumps = es_pump(cluster.url, cluster.prefix, generate_id=True, extended_stats=True, decode_base64=True)
    ok(run(tmp_path, redis_url, pumps))
    push(redis_url, msgpack_payloads([record]))
    ok(run(tmp_path, redis_url, pumps))

    hits = cluster.hits(cluster.prefix)
    assert len(hits) == 1
    assert hits[0]["_id"] == json.loads('"\\u00101f`6\\ufffdt3"')  # what Tyk Pump's murmur3 id is
    src = hits[0]["_source"]
    assert src["raw_request"] == "GET /users/42 HTTP/1.1\r\nHost: api.example.com\r\n\r\n"
    assert src["user_agent"] == "curl/8.4.0"
    assert cluster.properties(cluster.prefix)["raw_request"]["type"] == "text"


def test_disable_bulk_creates_each_document_and_isolates_a_mapping_error(cluster: Cluster, redis_url: str, tmp_path: Path) -> None:
    index = cluster.prefix
    assert cluster.http.put(f"/{index}", json={"mappings": {"properties": {"api_version": {"type": "long"}}}}).status_code == 200
    payloads = msgpack_payloads([day(0, i, api_version="3") for i in range(12)] + [day(0, 50, api_version="three")])
    pumps = es_pump(cluster.url, index, disable_bulk=True, bulk_config={"workers": 4})
    push(redis_url, payloads)
    ok(run(tmp_path, redis_url, pumps))
    push(redis_url, payloads[:6])
    ok(run(tmp_path, redis_url, pumps))

    assert {h["_id"] for h in cluster.hits(index)} == ids_of(payloads[:12])
    entries = deadletters(redis_url)
    assert [e["record_id"] for e in entries] == [mp.record_id(payloads[12])]
    assert "mapper_parsing_exception" in entries[0]["reason"]


def test_bulk_config_splits_requests_and_sends_them_concurrently(cluster: Cluster, redis_url: str, tmp_path: Path) -> None:
    payloads = msgpack_payloads([day(0, i) for i in range(100)])
    push(redis_url, payloads)
    pumps = es_pump(cluster.url, cluster.prefix, bulk_config={"workers": 3, "bulk_actions": 7, "bulk_size": 100_000})
    proc = run(tmp_path, redis_url, pumps, log_level="debug")
    ok(proc)
    sizes = [int(line.split("documents=")[1].split()[0]) for line in proc.stderr.splitlines() if "Bulk request done." in line]
    assert sum(sizes) == 100 and max(sizes) == 7 and len(sizes) == 15, sizes
    assert {h["_id"] for h in cluster.hits(cluster.prefix)} == ids_of(payloads)

    # bulk_size cuts too: ~700-byte documents, 2000 bytes per request → 2 per request at most.
    other = f"{cluster.prefix}-small"
    payloads = msgpack_payloads([day(1, i, api_name="x" * 200) for i in range(12)])
    push(redis_url, payloads)
    proc = run(tmp_path, redis_url, es_pump(cluster.url, other, bulk_config={"bulk_size": 2000}), log_level="debug")
    ok(proc)
    lines = [line for line in proc.stderr.splitlines() if "Bulk request done." in line]
    assert len(lines) >= 4 and all(int(line.split("bytes=")[1].split()[0]) <= 2000 for line in lines), lines
    assert cluster.count(other) == 12


# ------------------------------------------------------------------------------------------ outages


def closed_port() -> int:
    return servers.free_port()  # nothing listens there: connections are refused


def test_outage_loses_nothing_records_wait_in_redis(cluster: Cluster, redis_url: str, tmp_path: Path) -> None:
    payloads = msgpack_payloads([day(0, i) for i in range(40)])
    push(redis_url, payloads)

    down = run(tmp_path, redis_url, es_pump(f"http://127.0.0.1:{closed_port()}", cluster.prefix), name="down.json")
    assert down.returncode == 1, down.stderr[-3000:]
    assert "cannot reach any Elasticsearch node" in down.stderr
    assert cluster.count(cluster.prefix) == 0
    assert deadletters(redis_url) == []

    ok(run(tmp_path, redis_url, es_pump(cluster.url, cluster.prefix)))
    assert {h["_id"] for h in cluster.hits(cluster.prefix)} == ids_of(payloads)
    assert list_lengths(redis_url) == {}


def test_node_list_fails_over_to_a_live_node(cluster: Cluster, redis_url: str, tmp_path: Path) -> None:
    payloads = msgpack_payloads([day(0, i) for i in range(25)])
    push(redis_url, payloads)
    urls = f"http://127.0.0.1:{closed_port()}, {cluster.url}"
    ok(run(tmp_path, redis_url, es_pump(urls, cluster.prefix, bulk_config={"bulk_actions": 5})))
    assert {h["_id"] for h in cluster.hits(cluster.prefix)} == ids_of(payloads)


class Passthrough:
    """A TCP pass-through on a port of its own to a real node: refuses connections while down,
    forwards bytes while up, optionally terminating TLS in front of the node."""

    def __init__(self, target: str, tls: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(target)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 9200)
        self.tls = tls
        self.port = servers.free_port()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def up(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            for s in list(self._sockets):
                with contextlib.suppress(OSError):
                    s.close()
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            upstream = socket.create_connection(self.target)
        except (OSError, ssl.SSLError):
            conn.close()
            return
        with self._lock:
            self._sockets.update((conn, upstream))
        threading.Thread(target=self._copy, args=(upstream, conn), daemon=True).start()
        self._copy(conn, upstream)

    @staticmethod
    def _copy(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()


def test_node_down_at_start_then_up_delivers_everything_in_the_same_run(cluster: Cluster, redis_url: str, tmp_path: Path) -> None:
    proxy = Passthrough(cluster.url)
    payloads = msgpack_payloads([day(0, i) for i in range(30)])
    push(redis_url, payloads)
    timer = threading.Timer(2.0, proxy.up)  # refused for 2 s, then the node answers
    timer.start()
    try:
        proc = run(tmp_path, redis_url, es_pump(f"http://127.0.0.1:{proxy.port}", cluster.prefix))
    finally:
        timer.cancel()
        proxy.down()
    ok(proc)
    assert "Pump recovered." in proc.stderr
    assert {h["_id"] for h in cluster.hits(cluster.prefix)} == ids_of(payloads)
    assert deadletters(redis_url) == []


# ---------------------------------------------------------------------------------------------- TLS


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throw-away CA, a server certificate for 127.0.0.1 and a client certificate."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed: cannot make test certificates")
    d = tmp_path_factory.mktemp("pki")
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=pump test CA",
        cwd=d,
    )
    for name, ext in (
        ("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ):
        (d / f"{name}.ext").write_text(ext)
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=d,
        )  # fmt: skip
    return d


def test_tls_is_verified_and_client_certificates_are_sent(
    elastic_server: servers.Server, certificates: Path, redis_url: str, tmp_path: Path
) -> None:
    d = certificates
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(d / "ca.pem"))
    tls.load_cert_chain(str(d / "server.pem"), str(d / "server.key"))
    tls.verify_mode = ssl.CERT_REQUIRED  # mutual TLS: the proxy wants our client certificate
    proxy = Passthrough(elastic_server.url, tls)
    proxy.up()
    index = f"pit-tls-{uuid.uuid4().hex[:8]}"
    url = f"https://127.0.0.1:{proxy.port}"
    client_cert = {"ssl_cert_file": str(d / "client.pem"), "ssl_key_file": str(d / "client.key")}
    try:
        # Verified by default: our CA is not trusted, so the check fails.
        path = write_config(tmp_path / "untrusted.json", redis_url, es_pump(url, index, use_ssl=True, **client_cert))
        proc = run_pump("validate", "--check", "--config", str(path))
        assert proc.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in proc.stdout, proc.stdout + proc.stderr

        # Trusted CA but no client certificate: the server refuses the handshake.
        path = write_config(tmp_path / "nocert.json", redis_url, es_pump(url, index, use_ssl=True, ssl_ca_file=str(d / "ca.pem")))
        proc = run_pump("validate", "--check", "--config", str(path))
        assert proc.returncode == 1 and "FAILED: pump es" in proc.stdout, proc.stdout + proc.stderr

        payloads = msgpack_payloads([day(0, i) for i in range(10)])
        push(redis_url, payloads)
        ok(run(tmp_path, redis_url, es_pump(url, index, use_ssl=True, ssl_ca_file=str(d / "ca.pem"), **client_cert)))
    finally:
        proxy.down()
    with httpx.Client(base_url=elastic_server.url, timeout=60) as http:
        try:
            http.post(f"/{index}/_refresh")
            ids = {h["_id"] for h in http.post(f"/{index}/_search", json={"size": 100}).json()["hits"]["hits"]}
            assert ids == ids_of(payloads)
        finally:
            http.delete(f"/{index}")
            http.delete(f"/_index_template/pump-{index}")


def test_validate_check_reaches_the_node(cluster: Cluster, redis_url: str, tmp_path: Path) -> None:
    path = write_config(tmp_path / "ok.json", redis_url, es_pump(cluster.url, cluster.prefix))
    proc = run_pump("validate", "--check", "--config", str(path))
    assert proc.returncode == 0 and "ok: pump es (elasticsearch)" in proc.stdout, proc.stdout + proc.stderr
    path = write_config(tmp_path / "down.json", redis_url, es_pump(f"http://127.0.0.1:{closed_port()}", cluster.prefix))
    proc = run_pump("validate", "--check", "--config", str(path))
    assert proc.returncode == 1 and "cannot reach any Elasticsearch node" in proc.stdout, proc.stdout + proc.stderr
