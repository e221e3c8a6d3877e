"""Mongo pumps: Tyk's meta keys, client options, error mapping — no server needed."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from pymongo.errors import (
    AutoReconnect,
    DocumentTooLarge,
    DuplicateKeyError,
    InvalidName,
    NetworkTimeout,
    OperationFailure,
    ServerSelectionTimeoutError,
)

from pump.config.model import Config
from pump.errors import BatchDataError, RetriableError
from pump.sinks import meta_model
from pump.sinks.mongo import Meta as MongoMeta
from pump.sinks.mongo_aggregate import Meta as AggregateMeta
from pump.sinks.mongo_common import (
    CollectionMeta,
    InvalidCollection,
    classify_write_errors,
    client_options,
    database_name,
    is_size_error,
    map_error,
    redact_url,
)
from pump.sinks.mongo_selective import Meta as SelectiveMeta
from pump.sinks.mongo_uptime import build_uptime, uptime_meta

URL = "mongodb://user:s3cret@db.example.com:27017/tyk_analytics"

#: Every BaseMongoConf key of Tyk (tyk-pump.md §4), with a non-default value.
BASE_KEYS: dict[str, Any] = {
    "mongo_url": URL,
    "mongo_use_ssl": True,
    "mongo_ssl_insecure_skip_verify": False,
    "mongo_ssl_allow_invalid_hostnames": True,
    "mongo_ssl_ca_file": "/etc/ssl/ca.pem",
    "mongo_ssl_pem_keyfile": "/etc/ssl/client.pem",
    "mongo_db_type": 1,
    "omit_index_creation": True,
    "mongo_session_consistency": "monotonic",
    "driver": "mongo-go",
    "mongo_direct_connection": True,
    "meta_env_prefix": "TYK_PMP_PUMPS_MONGO_META",
}


def test_registry_maps_the_three_types() -> None:
    assert meta_model("mongo") is MongoMeta
    assert meta_model("mongo-pump-selective") is SelectiveMeta
    assert meta_model("mongo-pump-aggregate") is AggregateMeta


def test_mongo_accepts_every_tyk_key() -> None:
    meta = MongoMeta.model_validate(
        {
            **BASE_KEYS,
            "collection_name": "tyk_analytics",
            "max_insert_batch_size_bytes": 80000,
            "max_document_size_bytes": 20112,
            "collection_cap_enable": True,
            "collection_cap_max_size_bytes": 1 << 30,
        }
    )
    assert (meta.batch_bytes, meta.document_bytes, meta.cap_bytes) == (80000, 20112, 1 << 30)


def test_defaults_are_tyks() -> None:
    meta = MongoMeta.model_validate({"mongo_url": URL, "collection_name": "c"})
    assert meta.batch_bytes == 10 * 1024 * 1024
    assert meta.document_bytes == 10 * 1024 * 1024
    assert meta.cap_bytes == 5 * 1024**3
    assert not meta.collection_cap_enable


def test_aggregate_accepts_every_tyk_key_and_nulls() -> None:
    meta = AggregateMeta.model_validate(
        {
            **BASE_KEYS,
            "use_mixed_collection": True,
            "track_all_paths": True,
            "ignore_tag_prefix_list": None,
            "threshold_len_tag_list": -1,
            "store_analytics_per_minute": False,
            "aggregation_time": 15,
            "enable_aggregate_self_healing": True,
            "ignore_aggregations": ["apikeys", "Geo"],
        }
    )
    assert meta.ignore_tag_prefix_list == [] and meta.aggregation_time == 15


def test_selective_accepts_its_keys() -> None:
    meta = SelectiveMeta.model_validate({**BASE_KEYS, "max_insert_batch_size_bytes": 1, "max_document_size_bytes": 2})
    assert (meta.batch_bytes, meta.document_bytes) == (1, 2)


@pytest.mark.parametrize(
    ("model", "meta", "message"),
    [
        (MongoMeta, {"collection_name": "c"}, "mongo_url"),
        (MongoMeta, {"mongo_url": "  "}, "mongo_url"),
        (MongoMeta, {"mongo_url": "http://x/db", "collection_name": "c"}, "mongodb://"),
        (MongoMeta, {"mongo_url": URL}, "collection_name"),
        (MongoMeta, {"mongo_url": URL, "collection_name": "c", "colection_name": "typo"}, "colection_name"),
        (AggregateMeta, {"mongo_url": URL, "mongo_session_consistency": "sometimes"}, "strong, monotonic, eventual"),
        (AggregateMeta, {"mongo_url": URL, "mongo_db_type": 3}, "mongo_db_type"),
        (AggregateMeta, {"mongo_url": URL, "driver": "motor"}, "mongo-go or mgo"),
        (AggregateMeta, {"mongo_url": URL, "threshold_len_tag_list": -2}, "threshold_len_tag_list"),
    ],
)
def test_invalid_meta_is_refused(model: Any, meta: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as exc:
        model.model_validate(meta)
    assert message in str(exc.value)


def test_url_error_never_shows_the_password() -> None:
    from pump.config.load import format_errors

    with pytest.raises(ValidationError) as exc:
        MongoMeta.model_validate({"mongo_url": "mongo://admin:hunter2@h/db", "collection_name": "c"})
    lines = format_errors(exc.value, prefix="pumps.mongo.meta.", model=MongoMeta)
    assert lines and lines[0].startswith("pumps.mongo.meta.mongo_url: ")
    assert "hunter2" not in " ".join(lines)


def test_revalidation_of_dumped_meta_is_stable() -> None:
    """The config loader stores ``meta.model_dump()`` and the registry validates it again."""
    meta = AggregateMeta.model_validate({**BASE_KEYS, "aggregation_time": 7})
    assert AggregateMeta.model_validate(meta.model_dump()) == meta


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (URL, "mongodb://user:<redacted>@db.example.com:27017/tyk_analytics"),
        ("mongodb+srv://u:p%40ss@cluster0.x.net/db?retryWrites=true", "mongodb+srv://u:<redacted>@cluster0.x.net/db?retryWrites=true"),
        ("mongodb://h1:1,h2:2/db", "mongodb://h1:1,h2:2/db"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("url", "db"),
    [(URL, "tyk_analytics"), ("mongodb://h/", "tyk_analytics"), ("mongodb://h", "tyk_analytics"), ("mongodb://h/x?tls=true", "x")],
)
def test_database_name(url: str, db: str) -> None:
    assert database_name(url) == db


def test_tls_is_verified_by_default() -> None:
    opts = client_options(MongoMeta.model_validate({"mongo_url": URL, "collection_name": "c", "mongo_use_ssl": True}))
    assert opts["tls"] is True
    assert "tlsInsecure" not in opts and "tlsAllowInvalidHostnames" not in opts
    assert opts["tz_aware"] is True


def test_tls_options_map_to_pymongo() -> None:
    opts = client_options(AggregateMeta.model_validate(BASE_KEYS), timeout=3)
    assert opts["tls"] and opts["tlsAllowInvalidHostnames"]
    assert opts["tlsCAFile"] == "/etc/ssl/ca.pem" and opts["tlsCertificateKeyFile"] == "/etc/ssl/client.pem"
    assert opts["directConnection"] is True and opts["readPreference"] == "primaryPreferred"
    assert opts["serverSelectionTimeoutMS"] == 3000
    insecure = client_options(AggregateMeta.model_validate({**BASE_KEYS, "mongo_ssl_insecure_skip_verify": True}))
    assert insecure["tlsInsecure"] is True and "tlsAllowInvalidHostnames" not in insecure


def test_client_options_are_accepted_by_pymongo() -> None:
    from pymongo import MongoClient

    meta = AggregateMeta.model_validate({**BASE_KEYS, "mongo_ssl_ca_file": "", "mongo_ssl_pem_keyfile": ""})
    client: MongoClient[Any] = MongoClient(URL, connect=False, **client_options(meta))
    try:
        assert client.options.read_preference.mongos_mode == "primaryPreferred"
    finally:
        client.close()


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (ServerSelectionTimeoutError("no servers"), RetriableError),
        (AutoReconnect("connection reset"), RetriableError),
        (NetworkTimeout("timed out"), RetriableError),
        (OperationFailure("not primary", code=10107), RetriableError),
        (OperationFailure("auth failed", code=18), RetriableError),
        (OperationFailure("something new", code=99999), RetriableError),
        (ConnectionRefusedError("refused"), RetriableError),
        (OperationFailure("bad value", code=2), BatchDataError),
        (OperationFailure("Cannot apply $inc to a value of non-numeric type", code=14), BatchDataError),
        (OperationFailure("conflict", code=40), BatchDataError),
        (OperationFailure("Resulting document after update is larger than 16777216", code=17419), BatchDataError),
        (DocumentTooLarge("BSON document too large (17000000 bytes)"), BatchDataError),
        (UnicodeEncodeError("utf-8", "x", 0, 1, "surrogates not allowed"), BatchDataError),
        (InvalidName("collection names must not contain '$': 'z_tyk_analyticz_a$b'"), InvalidCollection),
    ],
)
def test_map_error(exc: BaseException, kind: type) -> None:
    mapped = map_error(exc, "insert", "mongodb://***:***@h/db")
    assert type(mapped) is kind
    assert "mongo insert failed (mongodb://***:***@h/db)" in str(mapped)


@pytest.mark.parametrize(
    ("exc", "size"),
    [
        (DocumentTooLarge("BSON document too large (17825917 bytes) - the connected server supports ..."), True),
        (OperationFailure("x", code=10334), True),
        (OperationFailure("Resulting document after update is larger than 16777216", code=17419), True),
        (OperationFailure("Request size is too large", code=16500), True),
        (OperationFailure("Size must be between 0 and 16793600(16MB)"), True),
        (OperationFailure("duplicate", code=11000), False),
        (ServerSelectionTimeoutError("down"), False),
    ],
)
def test_size_errors(exc: BaseException, size: bool) -> None:
    assert is_size_error(exc) is size


def test_classify_write_errors() -> None:
    details = {
        "writeErrors": [
            {"index": 0, "code": 11000, "errmsg": "E11000 duplicate key"},
            {"index": 1, "code": 121, "errmsg": "Document failed validation"},
            {"index": 2, "code": 91, "errmsg": "shutting down"},
            {"index": 9, "code": 2, "errmsg": "out of range index is ignored"},
        ],
        "writeConcernErrors": [],
    }
    outcome = classify_write_errors(details, positions=[10, 11, 12])
    assert list(outcome.rejected) == [11] and "E121" in outcome.rejected[11]
    assert outcome.retry == [12]


def test_write_concern_errors_retry_everything() -> None:
    with pytest.raises(RetriableError, match="write concern"):
        classify_write_errors({"writeErrors": [], "writeConcernErrors": [{"errmsg": "waiting for replication timed out"}]}, [0])


def test_duplicate_key_error_alone_is_success() -> None:
    err = DuplicateKeyError("E11000", code=11000)
    assert classify_write_errors({"writeErrors": [{"index": 0, "code": err.code}]}, [0]).rejected == {}


def test_uptime_meta_from_uptime_pump_config() -> None:
    cfg = Config.model_validate(
        {
            "uptime_pump_config": {
                "mongo_url": URL,
                "max_insert_batch_size_bytes": 500000,
                "max_document_size_bytes": 200000,
                "mongo_use_ssl": True,
                "collection_cap_enable": True,
                "type": "postgres",
                "connection_string": "ignored",
            },
            "pumps": {"d": {"type": "dummy"}},
        }
    )
    meta = uptime_meta(cfg)
    assert isinstance(meta, CollectionMeta)
    assert meta.collection_name == "tyk_uptime_analytics"
    assert (meta.batch_bytes, meta.mongo_use_ssl, meta.collection_cap_enable) == (500000, True, True)
    sink = build_uptime(cfg)
    assert sink.name == "uptime"


def test_uptime_collection_name_is_configurable() -> None:
    cfg = Config.model_validate({"uptime_pump_config": {"mongo_url": URL, "collection_name": "my_uptime"}})
    assert uptime_meta(cfg).collection_name == "my_uptime"
