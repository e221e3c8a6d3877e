"""Secrets never leave the process: a table of configs with a distinct secret in every secret
field, rendered through ``pump validate`` in every way a config can be wrong, through the
scrubber that every log line passes, and through the values the drivers are given.

(``validate --check``, ``/ready``, debug logs and dead-letter reasons of a running pump are in
``tests/integration/test_secrets_output.py``.)"""

from __future__ import annotations

import copy
import io
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pump.cli import main
from pump.config.load import load
from pump.redact import scrub
from pump.telemetry import logging as pump_logging

Doc = dict[str, Any]

BASE: Doc = {"analytics_storage_config": {"host": "127.0.0.1", "port": 6379}, "pumps": {"csv": {"type": "csv"}}}


def with_pump(name: str, type_: str, meta: Doc) -> Doc:
    doc = copy.deepcopy(BASE)
    doc["pumps"][name] = {"type": type_, "meta": meta}
    return doc


def with_storage(**fields: Any) -> Doc:
    doc = copy.deepcopy(BASE)
    doc["analytics_storage_config"].update(fields)
    return doc


def with_uptime(**fields: Any) -> Doc:
    doc = copy.deepcopy(BASE)
    doc["uptime_pump_config"] = fields
    return doc


#: (case, valid config holding the secret, path of the section holding it, secret field, secret)
SECRET_CASES: list[tuple[str, Doc, tuple[str, ...], str, str]] = [
    ("redis password", with_storage(password="Rd1s-Pa55w0rd-A"), ("analytics_storage_config",), "password", "Rd1s-Pa55w0rd-A"),
    ("redis sentinel password", with_storage(sentinel_password="S3ntinel-Pw-B", master_name="m"),
     ("analytics_storage_config",), "sentinel_password", "S3ntinel-Pw-B"),
    ("sql url", with_pump("sql", "sql", {"type": "postgres", "connection_string": "postgresql://tyk:PgUrl-Secret-C@db:5432/x"}),
     ("pumps", "sql", "meta"), "connection_string", "PgUrl-Secret-C"),
    ("sql keywords", with_pump("sql", "sql", {"type": "postgres", "connection_string": "host=db user=tyk password=PgKw-Secret-D dbname=x"}),
     ("pumps", "sql", "meta"), "connection_string", "PgKw-Secret-D"),
    ("sql quoted keyword", with_pump("agg", "sql_aggregate", {"connection_string": "host=db user=tyk password='Pg Quoted E' dbname=x"}),
     ("pumps", "agg", "meta"), "connection_string", "Pg Quoted E"),
    ("mongo url", with_pump("mongo", "mongo", {"mongo_url": "mongodb://tyk:MongoPw-Secret-F@db:27017/tyk", "collection_name": "c"}),
     ("pumps", "mongo", "meta"), "mongo_url", "MongoPw-Secret-F"),
    ("mongo selective url", with_pump("sel", "mongo-pump-selective", {"mongo_url": "mongodb://tyk:MongoSel-Secret-G@db/tyk"}),
     ("pumps", "sel", "meta"), "mongo_url", "MongoSel-Secret-G"),
    ("mongo aggregate url", with_pump("ma", "mongo-pump-aggregate", {"mongo_url": "mongodb+srv://tyk:MongoAgg-Secret-H@c0.x.net/tyk"}),
     ("pumps", "ma", "meta"), "mongo_url", "MongoAgg-Secret-H"),
    ("es api key", with_pump("es", "elasticsearch", {"auth_api_key_id": "kid", "auth_api_key": "EsApiKey-Secret-I"}),
     ("pumps", "es", "meta"), "auth_api_key", "EsApiKey-Secret-I"),
    ("es basic password", with_pump("es", "elasticsearch", {"auth_basic_username": "elastic", "auth_basic_password": "EsBasic-Secret-J"}),
     ("pumps", "es", "meta"), "auth_basic_password", "EsBasic-Secret-J"),
    ("es url userinfo", with_pump("es", "elasticsearch", {"elasticsearch_url": "https://elastic:EsUrl-Secret-K@es:9200"}),
     ("pumps", "es", "meta"), "elasticsearch_url", "EsUrl-Secret-K"),
    ("uptime mongo url", with_uptime(mongo_url="mongodb://tyk:UpMongo-Secret-L@db/tyk"),
     ("uptime_pump_config",), "mongo_url", "UpMongo-Secret-L"),
    ("uptime sql", with_uptime(uptime_type="sql", type="postgres", connection_string="postgresql://tyk:UpSql-Secret-M@db/x"),
     ("uptime_pump_config",), "connection_string", "UpSql-Secret-M"),
]  # fmt: skip

CASE_IDS = [c[0] for c in SECRET_CASES]


def section(doc: Doc, path: tuple[str, ...]) -> Doc:
    node = doc
    for key in path:
        node = node[key]
    return node


def set_section(doc: Doc, path: tuple[str, ...], value: Any) -> None:
    section(doc, path[:-1])[path[-1]] = value


def mistyped_secret(doc: Doc, path: tuple[str, ...], field: str, secret: str) -> None:
    section(doc, path)[field] = [section(doc, path)[field], {"again": section(doc, path)[field]}]


def section_as_list(doc: Doc, path: tuple[str, ...], field: str, secret: str) -> None:
    set_section(doc, path, [section(doc, path)])


def mistyped_sibling(doc: Doc, path: tuple[str, ...], field: str, secret: str) -> None:
    # A key every section has, given a value of the wrong type: the error is about the sibling,
    # or (for sections validated as a whole) about the section and its input dict.
    target = section(doc, path)
    sibling = {"analytics_storage_config": "port", "uptime_pump_config": "table_sharding"}.get(path[0], "meta_env_prefix")
    target[sibling] = {"wrong": ["type"], "near": target[field]}


def misspelt_secret_key(doc: Doc, path: tuple[str, ...], field: str, secret: str) -> None:
    target = section(doc, path)
    target[field + "_"] = target[field]


def model_level(doc: Doc, path: tuple[str, ...], field: str, secret: str) -> None:
    """An error of the whole section (a model validator), whose input is the section dict."""
    target = section(doc, path)
    if path[-1] == "meta" and doc["pumps"][path[1]]["type"] == "elasticsearch":
        target["ssl_cert_file"] = "/tmp/cert.pem"  # without ssl_key_file: refused by the model
    elif path[-1] == "meta":
        target["type"] = "mysql"  # SQL: refused; Mongo: unknown key, alongside the secret
    else:
        target["iam_auth"] = ["not", "a", "mapping", target[field]]


BREAKAGES: dict[str, Callable[[Doc, tuple[str, ...], str, str], None]] = {
    "secret field mistyped": mistyped_secret,
    "section given as a list": section_as_list,
    "sibling mistyped": mistyped_sibling,
    "secret key misspelt": misspelt_secret_key,
    "model-level error": model_level,
}


def validate_output(tmp_path: Path, doc: Doc, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    path = tmp_path / "pump.conf"
    path.write_text(json.dumps(doc))
    code = main(["validate", "--config", str(path), *args])
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.parametrize(("case", "doc", "path", "field", "secret"), SECRET_CASES, ids=CASE_IDS)
def test_a_valid_config_loads_and_its_secret_reaches_the_driver_only_explicitly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, doc: Doc, path: tuple[str, ...], field: str, secret: str
) -> None:
    code, output = validate_output(tmp_path, doc, capsys)
    assert code == 0, output
    assert secret not in output
    config, _ = load(write(tmp_path, doc), {})
    holder: Any = config
    for key in path:
        holder = holder[key] if isinstance(holder, dict) else getattr(holder, key)
    value = holder[field] if isinstance(holder, dict) else getattr(holder, field)
    if isinstance(value, str):  # a URL kept in clear (it names servers): its password is scrubbed from output
        assert field == "elasticsearch_url"
        assert secret not in scrub(f"GET {value} failed")
        return
    assert secret not in repr(value) and secret not in str(value) and secret not in repr(config)
    assert secret in value.get_secret_value(), "the real value is there for the code that asks for it"


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
@pytest.mark.parametrize(("case", "doc", "path", "field", "secret"), SECRET_CASES, ids=CASE_IDS)
def test_validate_errors_never_echo_a_secret(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    breakage: str,
    case: str,
    doc: Doc,
    path: tuple[str, ...],
    field: str,
    secret: str,
) -> None:
    broken = copy.deepcopy(doc)
    BREAKAGES[breakage](broken, path, field, secret)
    code, output = validate_output(tmp_path, broken, capsys)
    assert code == 78, output
    assert "invalid configuration" in output
    assert secret not in output
    for piece in secret.split():
        assert piece not in output


def test_the_reported_case_model_error_with_es_credentials(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 9 item 6: the ES model check printed the whole meta, keys and passwords in clear."""
    doc = with_pump("es", "elasticsearch", {"auth_api_key": "K3y-Material-Z", "auth_basic_username": "u", "auth_basic_password": "Pw-Z"})
    code, output = validate_output(tmp_path, doc, capsys)
    assert code == 78
    assert "auth_api_key_id and auth_api_key must be set together" in output
    assert "K3y-Material-Z" not in output and "'Pw-Z'" not in output
    assert "<redacted>" in output


def write(tmp_path: Path, doc: Doc) -> Path:
    path = tmp_path / "pump.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(
    ("dsn", "secret"),
    [
        ("postgresql://tyk:Bad%zzPercent-N@db/x", "Bad%zzPercent-N"),
        ("postgresql://tyk:Has Space-O@db/x", "Has Space-O"),
        ("postgresql://tyk:Pw-P@db/x?bogus_option=1", "Pw-P"),
        ("host=db password=Kw-Secret-Q bogus", "Kw-Secret-Q"),
        ("host=db password='Unterminated-R", "Unterminated-R"),
        ("postgresql://tyk:Pw-S@[::1/x", "Pw-S"),
    ],
)
def test_an_unparsable_dsn_is_a_config_error_that_hides_its_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dsn: str, secret: str
) -> None:
    """libpq's parser echoes what it cannot parse; the pump refuses the string at validate time
    (naming the key and the fix) without showing any of the password."""
    code, output = validate_output(tmp_path, with_pump("sql", "sql", {"type": "postgres", "connection_string": dsn}), capsys)
    assert code == 78, output
    assert "pumps.sql.meta.connection_string:" in output and "percent-encode" in output
    assert secret not in output
    for piece in secret.replace("%", " ").split():
        assert len(piece) < 4 or piece not in output


def test_env_overrides_fill_secret_fields(tmp_path: Path) -> None:
    env = {
        "TYK_PMP_ANALYTICSSTORAGECONFIG_PASSWORD": "Env-Redis-Pw",
        "TYK_PMP_PUMPS_SQL_TYPE": "sql",
        "TYK_PMP_PUMPS_SQL_META_CONNECTIONSTRING": "postgresql://u:Env-Pg-Pw@h/db",
        "TYK_PMP_PUMPS_ES_TYPE": "elasticsearch",
        "TYK_PMP_PUMPS_ES_META_PASSWORD": "Env-Es-Pw",
        "TYK_PMP_PUMPS_ES_META_USERNAME": "elastic",
    }
    config, _ = load(write(tmp_path, BASE), env)
    assert config.analytics_storage_config.password.get_secret_value() == "Env-Redis-Pw"
    from pump.sinks import elasticsearch
    from pump.sinks.sql import raw as sql

    assert sql.Meta.model_validate(config.pumps["sql"].meta).connection_string.get_secret_value() == "postgresql://u:Env-Pg-Pw@h/db"
    es = elasticsearch.Meta.model_validate(config.pumps["es"].meta)
    assert es.auth_basic_password.get_secret_value() == "Env-Es-Pw"


def test_redis_client_gets_the_real_passwords() -> None:
    from pump.config.model import StorageConfig
    from pump.source.connect import connect

    client = connect(StorageConfig.model_validate({"password": "Real-Redis-Pw", "username": "u"}))
    assert client.connection_pool.connection_kwargs["password"] == "Real-Redis-Pw"


def test_es_auth_header_uses_the_real_secrets() -> None:
    import base64

    from pump.sinks.elasticsearch.client import auth_header
    from pump.sinks.elasticsearch.config import Meta

    meta = Meta.model_validate({"auth_api_key_id": "kid", "auth_api_key": "Real-Key"})
    assert auth_header(meta) == "ApiKey " + base64.b64encode(b"kid:Real-Key").decode()


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_every_log_line_is_scrubbed(fmt: str) -> None:
    """The log formatter is the chokepoint: a driver error carrying a DSN or a remembered secret,
    in the message or in a field, at debug level, comes out without it."""
    from pump.sinks.sql.raw import Meta

    Meta.model_validate({"type": "postgres", "connection_string": "postgresql://tyk:Log-Secret-T@db/x"})
    stream = io.StringIO()
    pump_logging.setup("debug", fmt, stream=stream)
    try:
        log = logging.getLogger("pump.test")
        log.debug("Driver said: could not connect to postgresql://tyk:Log-Secret-T@db/x", extra={"error": "token 'Log-Secret-T'"})
        log.debug("keywords", extra={"error": "host=db password=Other-Kw-Secret dbname=x", "nested": {"e": ["Log-Secret-T"]}})
        try:
            raise RuntimeError("connect failed: Log-Secret-T")
        except RuntimeError:
            log.exception("With a traceback.")
    finally:
        pump_logging.setup("info", "text")
    text = stream.getvalue()
    assert "Driver said" in text and "keywords" in text and "With a traceback" in text
    assert "Log-Secret-T" not in text and "Other-Kw-Secret" not in text


def test_the_redis_error_shown_on_ready_is_scrubbed() -> None:
    """What ``/ready`` and the outage log lines say about Redis passes the same scrubber."""
    from prometheus_client import CollectorRegistry

    from pump.config.model import StorageConfig
    from pump.telemetry.metrics import Metrics

    StorageConfig.model_validate({"password": "Redis-Secret-U"})
    metrics = Metrics(CollectorRegistry())
    metrics.redis_failed("AUTH Redis-Secret-U refused; redis://default:Other-Pw-V@h:6379/0")
    assert metrics.redis_error == "AUTH <redacted> refused; redis://default:<redacted>@h:6379/0"


def test_command_error_lines_are_scrubbed() -> None:
    """``one_line`` is how every command (``validate --check``, ``demo``, ``deadletter``) prints
    an exception: whatever the driver put in it, no secret comes out."""
    from pump.cli import one_line
    from pump.sinks.sql.raw import Meta

    Meta.model_validate({"type": "postgres", "connection_string": "host=db user=tyk password=Cli-Secret-W dbname=x"})
    line = one_line(RuntimeError("connect(host=db user=tyk password=Cli-Secret-W) failed:\n  token Cli-Secret-W"))
    assert line == "connect(host=db user=tyk password=<redacted> failed: token <redacted>"


def test_a_short_common_password_does_not_mangle_every_line() -> None:
    """A password such as ``pump`` is also a word: it is removed where it stands as a credential,
    not from every sentence."""
    from pump.config.model import StorageConfig

    StorageConfig.model_validate({"password": "pump"})
    assert scrub("pump started: 3 pumps") == "pump started: 3 pumps"
    assert scrub("redis://:pump@h:6379/0 and password=pump") == "redis://:<redacted>@h:6379/0 and password=<redacted>"
