"""The ``http`` pump (and ``splunk``/``moesif`` on it) against the real HTTP receiver of the test
tooling (tests/servers/http_receiver.py): a separate server process on 127.0.0.1 that records
every request and answers 429/500/400 or refuses TLS on demand. Sink-level tests call the sink
directly; pipeline tests run the real ``pump run`` against a real redis-server."""

from __future__ import annotations

import base64
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest
from orjson import loads as orjson_loads

from pump.delivery.deadletter import Entry
from pump.errors import BatchDataError, RejectedRecords, RetriableError
from pump.sinks.base import SinkBatch
from pump.sinks.http.config import Meta
from pump.sinks.http.moesif import Meta as MoesifMeta
from pump.sinks.http.moesif import build as build_moesif
from pump.sinks.http.sink import HttpSink, build_sink
from pump.sinks.http.splunk import Meta as SplunkMeta
from tests import servers
from tests.helpers import client, list_lengths, make_record, msgpack_payloads, numbered, pump_keys, push, run_once, write_config
from tests.integration.test_reliability import paths_in, start_daemon, stop, wait_for
from tests.servers.http_receiver import HttpReceiver

pytestmark = pytest.mark.integration


def sink(url: str, **meta: Any) -> HttpSink:
    return HttpSink("hook", Meta.model_validate({"url": url, **meta}))


async def write(s: HttpSink, records: list[Any], batch_id: str = "b1") -> None:
    try:
        await s.write(SinkBatch(batch_id, records))
    finally:
        await s.close()


async def test_ndjson_body_exactly(http_receiver: HttpReceiver) -> None:
    records = numbered(3)
    await write(sink(http_receiver.url + "/ingest", fields=["path", "response_code", "api_id"]), records)
    [req] = http_receiver.requests()
    assert (req.method, req.path, req.header("Content-Type")) == ("POST", "/ingest", "application/x-ndjson")
    assert req.body == b"".join(
        b'{"path":"/items/%d","response_code":200,"api_id":"727dad853a8a45f64ab981154d1ffdad"}\n' % i for i in range(3)
    )


async def test_json_array_whole_records_in_requests_of_batch_max_records(http_receiver: HttpReceiver) -> None:
    records = numbered(5)
    await write(sink(http_receiver.url + "/in", format="json-array", batch_max_records=2, method="PUT"), records)
    reqs = http_receiver.requests()
    assert [r.method for r in reqs] == ["PUT"] * 3
    assert [len(r.json()) for r in reqs] == [2, 2, 1]
    assert [d for r in reqs for d in r.json()] == [r.to_json() for r in records]
    assert reqs[0].header("Content-Type") == "application/json"


async def test_path_parameters_group_records_by_url(http_receiver: HttpReceiver) -> None:
    records = [make_record(api_id=a, path=f"/p/{i}") for i, a in enumerate(["a1", "b/2", "a1", "b/2", "a1"])]
    await write(sink(http_receiver.url + "/authors/{api_id}/books?org={org_id}", fields=["path"]), records)
    got = {(r.path, r.query): [d["path"] for d in r.ndjson()] for r in http_receiver.requests()}
    org = "org=5e9d9544a1dcd60001d0ed20"
    assert got == {("/authors/a1/books", org): ["/p/0", "/p/2", "/p/4"], ("/authors/b%2F2/books", org): ["/p/1", "/p/3"]}


async def test_gzip_bodies(http_receiver: HttpReceiver) -> None:
    records = numbered(200)
    await write(sink(http_receiver.url + "/gz", gzip=True), records)
    [req] = http_receiver.requests()
    assert req.header("Content-Encoding") == "gzip"
    assert req.raw_size < req.body_size / 5  # it really was compressed on the wire
    assert [d["path"] for d in req.ndjson()] == [r.path for r in records]


async def test_auth_headers_from_value_env_and_file(http_receiver: HttpReceiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUMP_TEST_HOOK_TOKEN", "bearer-from-env-1")
    (tmp_path / "pw").write_text("pw-from-file-22\n")
    url = http_receiver.url + "/auth"
    await write(sink(url, auth={"type": "bearer", "token_env": "PUMP_TEST_HOOK_TOKEN"}), [make_record()])
    await write(sink(url, auth={"type": "basic", "username": "ann", "password_file": str(tmp_path / "pw")}), [make_record()])
    await write(
        sink(url, auth={"type": "api_key", "token": "key-value-333", "header": "X-Api-Key"}, headers={"X-Env": "prod"}), [make_record()]
    )
    reqs = http_receiver.requests()
    assert reqs[0].header("Authorization") == "Bearer bearer-from-env-1"
    assert reqs[1].header("Authorization") == "Basic " + base64.b64encode(b"ann:pw-from-file-22").decode()
    assert (reqs[2].header("X-Api-Key"), reqs[2].header("X-Env"), reqs[2].header("Authorization")) == ("key-value-333", "prod", None)


async def test_splunk_pump_sends_tyks_hec_requests(http_receiver: HttpReceiver) -> None:
    """``type: splunk``: HEC's event path, ``Authorization: Splunk <token>``, one event per request
    without ``enable_batch``, concatenated events in one request with it — as Tyk's pump."""
    records = [make_record(path="/a", timestamp_ns=1705326312_123456000), make_record(path="/b", timestamp_ns=1705326313_000000000)]
    conf = {
        "collector_token": "hec-token-0001",
        "collector_url": http_receiver.url + "/services/collector/event",
        "fields": ["path", "time_stamp"],
    }
    for batched in (False, True):
        m = SplunkMeta.model_validate({**conf, "enable_batch": batched})
        await write(build_sink("splunk", m.to_http(), m.options(), "splunk"), records)
    reqs = http_receiver.requests()
    assert {r.path for r in reqs} == {"/services/collector/event/1.0"}
    assert {r.header("Authorization") for r in reqs} == {"Splunk hec-token-0001"}
    one = b'{"time":1705326312,"event":{"path":"/a","time_stamp":"2024-01-15T13:45:12.123456Z"}}'
    two = b'{"time":1705326313,"event":{"path":"/b","time_stamp":"2024-01-15T13:45:13Z"}}'
    assert [r.body for r in reqs] == [one, two, one + two]


async def test_moesif_pump_posts_event_batches(http_receiver: HttpReceiver) -> None:
    raw = base64.b64encode(b"GET /x?y=1 HTTP/1.1\r\nHost: h\r\n\r\n").decode()
    meta = MoesifMeta.model_validate(
        {"application_id": "moesif-app-77", "bulk_config": {"api_endpoint": http_receiver.url, "batch_size": 2}}
    )
    s = build_moesif(type("Ctx", (), {"name": "moesif"})(), meta)  # type: ignore[arg-type]
    await write(s, [make_record(raw_request=raw, path=f"/x{i}") for i in range(3)])
    reqs = http_receiver.requests()
    assert [(r.path, r.header("X-Moesif-Application-Id"), r.header("Content-Encoding")) for r in reqs] == [
        ("/v1/events/batch", "moesif-app-77", "gzip")
    ] * 2
    events = [e for r in reqs for e in r.json()]
    assert len(events) == 3 and events[0]["request"]["uri"] == "/x?y=1" and events[2]["request"]["headers"] == {"host": "h"}


async def test_logzio_pump_posts_tyks_documents_to_the_bulk_listener(http_receiver: HttpReceiver) -> None:
    """``type: logzio`` from a Tyk pump.conf (its disk-queue keys accepted): Tyk's fourteen-field
    document per line, to ``<url>/?token=…``, in requests of at most ``batch_max_bytes``; a 401 (a
    wrong token) is retried, not dropped as Logz.io's sender drops it."""
    from pump.config.load import validate
    from pump.sinks import build
    from pump.sinks.base import SinkContext

    tyk = {"token": "logz-tok-9", "url": http_receiver.url, "queue_dir": "/tmp/q", "drain_duration": "3s", "batch_max_bytes": 2048}
    config, warnings = validate({"pumps": {"logz": {"type": "logzio", "meta": tyk}}})
    assert [w.split(":")[0] for w in warnings] == ["pumps.logz.meta.queue_dir", "pumps.logz.meta.drain_duration"]
    records = [make_record(path=f"/l/{i}", timestamp_ns=1705326312_123456000 + i * 1000) for i in range(6)]
    await write(build(SinkContext("logz", config.pumps["logz"], config)), records)  # type: ignore[arg-type]
    reqs = http_receiver.requests()
    assert len(reqs) > 1 and {(r.method, r.path, r.query) for r in reqs} == {("POST", "/", "token=logz-tok-9")}
    assert all(r.body_size <= 2048 for r in reqs)
    lines = [line for r in reqs for line in (r.body or b"").splitlines()]
    assert [orjson_loads(line)["request_uri"] for line in lines] == [r.path for r in records]
    assert lines[0] == (
        b'{"@timestamp":"2024-01-15T13:45:12.123456Z","api_id":"727dad853a8a45f64ab981154d1ffdad","api_key":"00000000",'
        b'"api_name":"Users API","api_version":"Non Versioned","http_method":"GET","ip_address":"172.18.0.1",'
        b'"oauth_id":"","org_id":"5e9d9544a1dcd60001d0ed20","raw_request":"","raw_response":"","request_time_ms":12,'
        b'"request_uri":"/l/0","response_code":200}'
    )
    http_receiver.fail(401, count=1, body='{"error":"unauthorized"}')
    with pytest.raises(RetriableError, match="HTTP 401"):
        await write(build(SinkContext("logz", config.pumps["logz"], config)), records[:1])  # type: ignore[arg-type]


async def test_retry_after_and_statuses_reach_the_delivery_layer(http_receiver: HttpReceiver) -> None:
    url = http_receiver.url + "/s"
    http_receiver.fail(429, count=1, retry_after=7, body="slow down")
    with pytest.raises(RetriableError, match="HTTP 429: slow down") as info:
        await write(sink(url), numbered(2))
    assert info.value.retry_after == 7
    http_receiver.fail(503, count=1)
    with pytest.raises(RetriableError, match="HTTP 503"):
        await write(sink(url), numbered(2))
    http_receiver.fail(400, count=1, body='{"error":"bad field"}')
    with pytest.raises(BatchDataError, match=re.escape('HTTP 400: {"error":"bad field"}')):
        await write(sink(url), numbered(2))
    http_receiver.fail(401, count=1)
    with pytest.raises(RetriableError, match="authentication failed"):
        await write(sink(url), numbered(2))
    # some requests delivered: only the records not delivered are written again, and once one
    # request must be retried the rest of the batch is not sent
    http_receiver.clear()
    http_receiver.fail(500, path="/s", count=1, body_contains="/items/3")
    with pytest.raises(RejectedRecords) as rej:
        await write(sink(url, batch_max_records=2), numbered(6))
    assert rej.value.retry == [2, 3, 4, 5] and rej.value.rejected == {}
    assert [r.status for r in http_receiver.requests()] == [200, 500]
    # a lone record refused as data among delivered ones is dead-lettered at once
    http_receiver.clear()
    http_receiver.fail(422, path="/s", count=1, body_contains="/items/1", body="no")
    with pytest.raises(RejectedRecords) as rej:
        await write(sink(url, batch_max_records=1, workers=3), numbered(3))
    assert rej.value.rejected == {1: "HTTP 422: no"} and rej.value.retry == []


async def test_unreachable_server_is_retriable(tmp_path: Path) -> None:
    from tests.servers import free_port

    with pytest.raises(RetriableError, match=re.escape("cannot connect to http://127.0.0.1")):
        await write(sink(f"http://127.0.0.1:{free_port()}/x"), numbered(1))


@pytest.fixture(scope="module")
def tls_receiver(tmp_path_factory: pytest.TempPathFactory) -> Any:
    srv = servers.start("http", tmp_path_factory.mktemp("tls-recv"), tls=True, client_auth="optional")
    yield srv
    srv.stop()


async def test_tls_verified_by_default_and_client_certificates(tls_receiver: servers.Server) -> None:
    tls = tls_receiver.details["tls"]
    receiver = HttpReceiver(tls_receiver)
    receiver.reset()
    url = tls_receiver.url + "/tls"
    with pytest.raises(RetriableError, match=r"TLS: the certificate of 127\.0\.0\.1:\d+ is not trusted .*set ssl_ca_file"):
        await write(sink(url), numbered(1))
    await write(sink(url, ssl_ca_file=tls["ca"]), numbered(1))
    await write(sink(url, ssl_ca_file=tls["ca"], ssl_cert_file=tls["client_cert"], ssl_key_file=tls["client_key"]), numbered(1))
    await write(sink(url, ssl_insecure_skip_verify=True), numbered(1))
    with pytest.raises(RetriableError, match="not trusted"):  # the certificate is for 127.0.0.1, not this name
        await write(sink(url, ssl_ca_file=tls["ca"], ssl_server_name="splunk.example.com"), numbered(1))
    reqs = receiver.requests()
    assert [r.tls for r in reqs] == [True] * 3
    assert [r.client_cert_subject and r.client_cert_subject.get("commonName") for r in reqs] == [None, "pump-test-client", None]
    receiver.close()


# --- through the real pump ------------------------------------------------------------------------


def dead_letters(redis_url: str, pump: str) -> list[Entry]:
    return [Entry.decode(e) for e in client(redis_url).lrange(f"pump:deadletter:{pump}", 0, -1)]


def test_a_refused_record_is_dead_lettered_and_the_rest_delivered(tmp_path: Path, redis_url: str, http_receiver: HttpReceiver) -> None:
    """The collector answers 400 to any request carrying one poisoned record: the pump splits the
    batch down to that record, dead-letters it with the server's reason, and delivers the rest."""
    records = numbered(40)
    records[17].api_name = "poison"
    push(redis_url, msgpack_payloads(records))
    http_receiver.fail(400, body_contains='"api_name":"poison"', body='{"error":"api_name poison refused"}')
    pumps = {"hook": {"type": "http", "meta": {"url": http_receiver.url + "/ingest", "batch_max_records": 10}}}
    proc = run_once(write_config(tmp_path / "pump.conf", redis_url, pumps, delivery={"backoff_initial": 0.01, "backoff_max": 0.05}))
    assert proc.returncode == 0, proc.stderr
    delivered = [d["path"] for r in http_receiver.requests() if r.status == 200 for d in r.ndjson()]
    assert sorted(delivered) == sorted(r.path for r in records if r.api_name != "poison")
    assert len(delivered) == len(set(delivered)), "no record delivered twice"
    [entry] = dead_letters(redis_url, "hook")
    assert entry.record_id == records[17].record_id or entry.payload == msgpack_payloads([records[17]])[0]
    assert "HTTP 400" in entry.reason and "api_name poison refused" in entry.reason
    assert list_lengths(redis_url) == {}


def test_retry_after_is_honoured_by_the_running_pump(tmp_path: Path, redis_url: str, http_receiver: HttpReceiver) -> None:
    push(redis_url, msgpack_payloads(numbered(5)))
    http_receiver.fail(429, count=1, retry_after=2)
    pumps = {"hook": {"type": "http", "meta": {"url": http_receiver.url + "/ingest"}}}
    proc = run_once(write_config(tmp_path / "pump.conf", redis_url, pumps, delivery={"backoff_initial": 0.01, "backoff_max": 0.05}))
    assert proc.returncode == 0, proc.stderr
    first, second = http_receiver.requests()
    assert (first.status, second.status) == (429, 200)
    assert second.time - first.time >= 1.9, "the retry waited for Retry-After, not the 50 ms backoff"
    assert len(second.ndjson()) == 5


def test_receiver_stopped_and_started_again_loses_nothing_while_csv_keeps_up(tmp_path: Path, redis_url: str) -> None:
    """Issue #14: the HTTP destination goes away for a while and comes back on the same port; the
    CSV pump beside it keeps delivering meanwhile, and the HTTP pump catches up with every record."""
    if servers.ENV_VARS["http"] in os.environ:
        pytest.skip("needs a receiver this test can stop and start")
    work = tmp_path / "recv"
    srv = servers.start("http", work)
    port = srv.port
    out = tmp_path / "csv"
    pumps = {
        "hook": {"type": "http", "meta": {"url": srv.url + "/ingest", "batch_max_records": 250, "gzip": True}, "timeout": 5},
        "csv": {"type": "csv", "meta": {"csv_dir": str(out)}},
    }
    config = write_config(tmp_path / "pump.conf", redis_url, pumps, purge_chunk=1000, delivery={"backoff_initial": 0.2, "backoff_max": 1})
    proc = start_daemon(config, tmp_path / "pump.log")
    received: list[str] = []

    def paths_received(receiver: HttpReceiver) -> set[str]:
        return {d["path"] for r in receiver.requests() if r.status == 200 for d in r.ndjson()}

    try:
        push(redis_url, msgpack_payloads(numbered(2000)))
        with HttpReceiver(srv) as receiver:
            wait_for(lambda: len(paths_received(receiver)) == 2000 and len(paths_in(out)) == 2000, 60, "both pumps to deliver wave 1", proc)
            received += paths_received(receiver)
        srv.stop()  # the destination goes away
        wave = numbered(6000)
        for r in wave:
            r.path = r.path.replace("/items/", "/during-outage/")
        push(redis_url, msgpack_payloads(wave))
        wait_for(lambda: len(paths_in(out)) == 8000, 60, "the CSV pump to deliver wave 2 during the outage", proc)
        assert list_lengths(redis_url) == {}, "the gateway lists are drained while the destination is down"
        time.sleep(3)  # stay down a while: the HTTP pump's retries keep failing
        srv = servers.start("http", work, port=port)  # back, same address, empty memory
        with HttpReceiver(srv) as receiver:
            wait_for(lambda: len(paths_received(receiver)) == 6000, 120, "the HTTP pump to catch up after the restart", proc)
            received += paths_received(receiver)
    finally:
        code = stop(proc)
        srv.stop()
    assert code == 0
    assert set(received) == {r.path for r in numbered(2000)} | {r.path for r in wave}
    assert set(paths_in(out).values()) == {1}
    assert pump_keys(redis_url) == []
    log = (tmp_path / "pump.log").read_text()
    assert "Pump is failing" in log and "Pump recovered." in log and "cannot connect to" in log
