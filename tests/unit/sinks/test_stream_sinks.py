"""Pure parts of the kafka, syslog, statsd and dogstatsd pumps: Tyk configs validate (and broken
ones name the key), the librdkafka settings of Tyk's keys, Tyk's message shapes byte for byte,
RFC 5424 framing, StatsD names and datagram packing."""

from __future__ import annotations

import json
import random
from pathlib import Path

import orjson
import pytest
from pydantic import ValidationError

from pump.config.load import load
from pump.errors import ConfigError
from pump.sinks.kafka.config import Meta as KafkaMeta
from pump.sinks.kafka.config import go_duration_seconds
from pump.sinks.kafka.message import Encoder as KafkaEncoder
from pump.sinks.kafka.sink import producer_config
from pump.sinks.netio import pack
from pump.sinks.statsd.config import DogMeta
from pump.sinks.statsd.config import Meta as StatsdMeta
from pump.sinks.statsd.lines import dog_lines, statsd_lines
from pump.sinks.syslog.config import Meta as SyslogMeta
from pump.sinks.syslog.message import Encoder as SyslogEncoder
from pump.sinks.syslog.message import tyk_text
from tests.helpers import make_record, storage_config

TYK_PUMPS = {
    "kafka": {"type": "kafka", "meta": {
        "broker": ["localhost:9092"], "client_id": "tyk-pump", "topic": "tyk-pump", "timeout": "60s", "compressed": True,
        "meta_data": {"key": "value"}, "use_ssl": False, "ssl_insecure_skip_verify": False, "ssl_cert_file": "",
        "ssl_key_file": "", "sasl_mechanism": "", "sasl_username": "", "sasl_password": "", "batch_bytes": 0}},
    "syslog": {"type": "syslog", "meta": {"transport": "udp", "network_addr": "localhost:5140", "log_level": 6, "tag": "syslog-pump"}},
    "statsd": {"type": "statsd", "meta": {"address": "localhost:8125", "fields": ["request_time"],
               "tags": ["path", "response_code", "api_key", "api_version", "api_name", "api_id", "raw_request", "ip_address"]}},
    "dogstatsd": {"type": "dogstatsd", "meta": {"address": "localhost:8125", "namespace": "pump", "async_uds": True,
                  "async_uds_write_timeout_seconds": 2, "buffered": True, "buffered_max_messages": 32, "sample_rate": 0.5,
                  "tags": ["method", "response_code", "api_version", "api_name", "api_id", "org_id", "tracked", "path", "oauth_id"]}},
}  # fmt: skip


def conf(tmp_path: Path, pumps: dict[str, object]) -> Path:
    path = tmp_path / "pump.conf"
    doc = {"analytics_storage_type": "redis", "analytics_storage_config": storage_config("redis://127.0.0.1:6379/0"), "pumps": pumps}
    path.write_text(json.dumps(doc))
    return path


def test_tyk_configs_of_the_four_types_validate(tmp_path: Path) -> None:
    config, _ = load(conf(tmp_path, TYK_PUMPS), {})
    assert sorted(p.type for p in config.pumps.values()) == ["dogstatsd", "kafka", "statsd", "syslog"]


@pytest.mark.parametrize(
    ("pump", "meta", "message"),
    [
        ("kafka", {"broker": [], "topic": "t"}, "pumps.p.meta.broker: Value error, list at least one broker"),
        ("kafka", {"broker": ["k:9092"]}, "pumps.p.meta.topic: Field required"),
        ("kafka", {"broker": ["k:9092"], "topic": "t", "timeout": "soon"}, "is not a duration"),
        ("kafka", {"broker": ["k:9092"], "topic": "t", "sasl_mechanism": "gssapi", "sasl_username": "u"}, "use plain or scram"),
        ("kafka", {"broker": ["k:9092"], "topic": "t", "batch_bytes": -1}, "pumps.p.meta.batch_bytes"),
        ("syslog", {"transport": "sctp"}, "pumps.p.meta.transport"),
        ("syslog", {"log_level": 192}, "pumps.p.meta.log_level"),
        ("syslog", {"tag": "has space"}, "RFC 5424 APP-NAME"),
        ("statsd", {"fields": ["response_code"]}, "only sends the timings"),
        ("dogstatsd", {"tags": ["api_key"]}, "Tyk's DogStatsD pump knows"),
        ("dogstatsd", {"address": "nohost"}, "is not host:port"),
    ],
)
def test_broken_configs_name_the_key(tmp_path: Path, pump: str, meta: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(conf(tmp_path, {"p": {"type": pump, "meta": meta}}), {})
    assert message in "\n".join(info.value.errors)


@pytest.mark.parametrize(("text", "seconds"), [("1", 1.0), ("2.5", 2.5), ("1s", 1.0), ("1m30s", 90.0), ("300ms", 0.3), ("1h", 3600.0)])
def test_go_durations(text: str, seconds: float) -> None:
    assert go_duration_seconds(text) == pytest.approx(seconds)


def test_kafka_settings_of_tyk_keys() -> None:
    meta = KafkaMeta.model_validate(
        {"broker": "a:9092, b:9093", "topic": "t", "use_ssl": True, "sasl_mechanism": "scram", "sasl_algorithm": "sha-512",
         "sasl_username": "u", "sasl_password": "secret-password", "ssl_ca_file": "/ca.pem", "batch_bytes": 500000, "timeout": 3}
    )  # fmt: skip
    c = producer_config(meta, "k")
    assert c["bootstrap.servers"] == "a:9092,b:9093" and c["enable.idempotence"] is True and c["acks"] == "all"
    assert c["security.protocol"] == "SASL_SSL" and c["sasl.mechanisms"] == "SCRAM-SHA-512" and c["sasl.password"] == "secret-password"
    assert c["enable.ssl.certificate.verification"] is True and c["ssl.endpoint.identification.algorithm"] == "https"
    assert c["batch.size"] == 500000 and c["request.timeout.ms"] == 3000 and c["compression.type"] == "none"
    assert "secret-password" not in repr(meta)
    plain = producer_config(
        KafkaMeta.model_validate({"broker": ["a:1"], "topic": "t", "sasl_mechanism": "PLAIN", "sasl_username": "u"}), "k"
    )
    assert plain["security.protocol"] == "SASL_PLAINTEXT" and plain["sasl.mechanisms"] == "PLAIN"
    insecure = producer_config(
        KafkaMeta.model_validate({"broker": ["a:1"], "topic": "t", "use_ssl": True, "ssl_insecure_skip_verify": True}), "k"
    )
    assert insecure["enable.ssl.certificate.verification"] is False


def test_kafka_message_is_tyks_json_with_sorted_keys_and_keyed_by_id() -> None:
    r = make_record(record_id="abc123", raw_request="R", tags=None)
    enc = KafkaEncoder({"zone": "eu"})
    value = enc.value(r)
    assert value.startswith(b'{"alias":"","api_id":"727dad853a8a45f64ab981154d1ffdad","api_key":"00000000","api_name":"Users API",')
    doc = orjson.loads(value)
    assert doc["timestamp"] == "2024-01-15T13:45:12.123456Z" and doc["tags"] is None and doc["zone"] == "eu" and doc["raw_request"] == "R"
    assert enc.key(r) == b"abc123" and KafkaEncoder({}, key_by_record_id=False).key(r) is None


def test_syslog_tyk_text_is_gos_map_formatting() -> None:
    r = make_record(raw_request="a\nb", content_length=7, alias="al")
    assert tyk_text(r) == (
        "map[alias:al api_id:727dad853a8a45f64ab981154d1ffdad api_key:00000000 api_name:Users API api_version:Non Versioned "
        "content_length:%!s(int64=7) host:api.example.com ip_address:172.18.0.1 method:GET oauth_id: org_id:5e9d9544a1dcd60001d0ed20 "
        "path:/users/42 raw_path:/users/42 raw_request:a\\nb raw_response: request_time_ms:%!s(int64=12) response_code:%!s(int=200) "
        "timestamp:2024-01-15 13:45:12.123456 +0000 UTC user_agent:curl/8.4.0]"
    )


def test_syslog_rfc5424_header_and_octet_counting() -> None:
    meta = SyslogMeta.model_validate({"transport": "tcp", "network_addr": "h:514", "log_level": 134, "tag": "t", "hostname": "gw1"})
    enc = SyslogEncoder(meta)
    msg = enc.message(make_record(record_id="r1"))
    head = b"<134>1 2024-01-15T13:45:12.123456Z gw1 t "
    assert msg.startswith(head) and b' - [pump@32473 id="r1"] map[alias: ' in msg
    framed = enc.frame(msg)
    assert framed == str(len(msg)).encode() + b" " + msg
    udp = SyslogEncoder(SyslogMeta.model_validate({"transport": "udp"}))
    assert udp.frame(b"x") == b"x"


def test_statsd_lines_follow_tyks_naming() -> None:
    r = make_record(path="/Users/42/", response_code=404, request_time=17, latency_total=20, api_name="My API")
    meta = StatsdMeta.model_validate({"fields": ["request_time", "latency_total"], "tags": ["path", "response_code", "api_name"]})
    assert list(statsd_lines(meta)([r])) == [b"request_time.get/users/42.404.myapi:17|ms", b"latency_total.get/users/42.404.myapi:20|ms"]
    sep = StatsdMeta.model_validate({"fields": ["request_time"], "tags": ["method", "path", "time_stamp"], "separated_method": True})
    assert list(statsd_lines(sep)([r])) == [b"request_time.get./users/42.2024-01-1513-45-12+0000utc:17|ms"]
    assert list(statsd_lines(StatsdMeta.model_validate({}))([r])) == [b"request_time:17|ms"]


def test_dogstatsd_lines_and_sampling() -> None:
    r = make_record(oauth_id="o1", track_path=True)
    default = DogMeta.model_validate({})
    assert list(dog_lines(default)([r])) == [
        b"default.request_time:12|h|#tyk-pump,path:/users/42,method:GET,response_code:200,api_version:Non Versioned,"
        b"api_name:Users API,api_id:727dad853a8a45f64ab981154d1ffdad,org_id:5e9d9544a1dcd60001d0ed20,tracked:true,oauth_id:o1"
    ]
    chosen = DogMeta.model_validate({"namespace": "n", "tags": ["api_name", "oauth_id"], "sample_rate": 0.25})
    lines = list(dog_lines(chosen, random.Random(7))([r] * 4000))
    assert lines[0] == b"n.request_time:12|h|@0.25|#tyk-pump,api_name:Users API,oauth_id:o1"
    assert 800 < len(lines) < 1200  # about a quarter sent; the server multiplies by 4


def test_pack_fills_datagrams_up_to_the_limit() -> None:
    lines = [b"x" * 100] * 50
    packets = pack(lines, 1432)
    assert all(len(p) <= 1432 for p in packets) and b"\n".join(packets).count(b"x" * 100) == 50 and len(packets) == 4
    assert [p.count(b"\n") + 1 for p in pack(lines, 65000, max_lines=16)] == [16, 16, 16, 2]
    assert pack([b"y" * 2000, b"z"], 1432) == [b"y" * 2000, b"z"]  # an oversized line travels alone
    assert pack([b"a", b"b"], 100, trailing=True) == [b"a\nb\n"]


def test_meta_errors_are_validation_errors() -> None:
    with pytest.raises(ValidationError):
        SyslogMeta.model_validate({"ssl_cert_file": "c.pem"})


def test_tyk_environment_overrides_use_tyks_go_names(tmp_path: Path) -> None:
    env = {
        "TYK_PMP_PUMPS_KAFKA_META_BROKER": "k1:9092,k2:9092",
        "TYK_PMP_PUMPS_KAFKA_META_PASSWORD": "from-the-environment",
        "TYK_PMP_PUMPS_KAFKA_META_USERNAME": "svc",
        "TYK_PMP_PUMPS_KAFKA_META_ALGORITHM": "sha-512",
        "TYK_PMP_PUMPS_KAFKA_META_TIMEOUT": "2s",
        "TYK_PMP_PUMPS_DOGSTATSD_META_ASYNCUDSWRITETIMEOUT": "3",
        "TYK_PMP_PUMPS_SYSLOG_META_NETWORKADDR": "logs:6514",
    }
    config, _ = load(conf(tmp_path, TYK_PUMPS), env)
    kafka = KafkaMeta.model_validate(config.pumps["kafka"].meta)
    assert kafka.broker == ["k1:9092", "k2:9092"] and kafka.sasl_username == "svc" and kafka.timeout == 2.0
    assert kafka.sasl_password.get_secret_value() == "from-the-environment" and kafka.sasl_algorithm == "sha-512"
    assert DogMeta.model_validate(config.pumps["dogstatsd"].meta).async_uds_write_timeout_seconds == 3
    assert SyslogMeta.model_validate(config.pumps["syslog"].meta).network_addr == "logs:6514"


def test_text_that_was_not_utf8_is_sent_not_refused() -> None:
    """The decoder keeps bytes that were not UTF-8 as surrogates. Kafka and syslog's JSON used to
    refuse (dead-letter) such a record: they now carry U+FFFD, as Go's encoder writes; syslog's
    Tyk text carries the original bytes, as Go's ``%s`` does. Found by the sink contract suite."""
    r = make_record(record_id="r1", path="/caf\udce9", tags=["t\udcff"])
    assert orjson.loads(KafkaEncoder({}).value(r))["path"] == "/caf\ufffd"
    as_json = SyslogEncoder(SyslogMeta.model_validate({"transport": "tcp", "format": "json", "hostname": "h"})).message(r)
    doc = orjson.loads(as_json.split(b"] ", 1)[1])
    assert doc["path"] == "/caf\ufffd" and doc["tags"] == ["t\ufffd"]
    as_text = SyslogEncoder(SyslogMeta.model_validate({"transport": "tcp", "hostname": "h"})).message(r)
    assert b"path:/caf\xe9 " in as_text


def test_statsd_lines_carry_text_that_was_not_utf8_as_replacement_characters() -> None:
    """A path or API id with bytes that were not UTF-8 made both StatsD encoders raise
    UnicodeEncodeError and fail the whole batch: the lines now carry U+FFFD, which a receiver
    needing UTF-8 names and labels keeps. Found by the sink contract suite (dogstatsd cases)."""
    r = make_record(record_id="r1", path="/caf\udce9", api_id="a\udcff")
    [dog] = dog_lines(DogMeta.model_validate({"namespace": "ns", "tags": ["path", "api_id"]}))([r])
    assert dog.decode() == f"ns.request_time:{r.request_time}|h|#tyk-pump,path:/caf\ufffd,api_id:a\ufffd"
    [timing] = statsd_lines(StatsdMeta.model_validate({"tags": ["api_id"]}))([r])
    assert timing.decode() == f"request_time.a\ufffd:{r.request_time}|ms"
