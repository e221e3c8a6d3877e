"""SQL pump settings: Tyk's SQLConf keys, MySQL refused by name, secrets never echoed."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from pump.config.load import validate
from pump.config.model import Config
from pump.errors import ConfigError
from pump.redact import scrub
from pump.sinks.sql import aggregate as sql_aggregate
from pump.sinks.sql import raw as sql
from pump.sinks.sql.config import DEFAULT_SQLITE_PATH, PG_DEFAULTS, infer_backend, pg_connect_kwargs, target_of
from pump.sinks.sql.uptime import build_uptime, uptime_meta

#: Every key of Tyk's SQLConf / SQLAggregatePumpConf, with non-default values (tyk-pump.md §4).
TYK_AGGREGATE_META: dict[str, Any] = {
    "type": "postgres",
    "connection_string": "host=db port=5432 user=tyk password=s3cret dbname=analytics sslmode=verify-full",
    "postgres": {"prefer_simple_protocol": True},
    "mysql": {"default_string_size": 512, "disable_datetime_precision": True, "dont_support_rename_index": True,
              "dont_support_rename_column": True, "skip_initialize_with_version": True},
    "table_sharding": True,
    "log_level": "debug",
    "batch_size": 500,
    "migrate_sharded_tables": True,
    "omit_index_creation": True,
    "track_all_paths": True,
    "ignore_tag_prefix_list": ["x-request-id"],
    "threshold_len_tag_list": 10,
    "store_analytics_per_minute": True,
    "ignore_aggregations": ["apikeys", "KeyEndpoint"],
    "meta_env_prefix": "TYK_PMP_PUMPS_SQLAGGREGATE_META",
}  # fmt: skip


def load(pumps: dict[str, Any], **top: Any) -> Config:
    config, _ = validate({"pumps": pumps, **top})
    return config


def errors_of(pumps: dict[str, Any], **top: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate({"pumps": pumps, **top})
    return info.value.errors


def test_every_tyk_key_is_accepted_and_keeps_its_value() -> None:
    config = load({"agg": {"type": "sql_aggregate", "meta": TYK_AGGREGATE_META}})
    meta = sql_aggregate.Meta.model_validate(config.pumps["agg"].meta)
    assert meta.type == "postgres"
    assert (meta.table_sharding, meta.batch_size, meta.rows_per_statement, meta.migrate_sharded_tables) == (True, 500, 500, True)
    assert (meta.track_all_paths, meta.store_analytics_per_minute, meta.omit_index_creation) == (True, True, True)
    assert meta.ignore_tag_prefix_list == ["x-request-id"]
    assert meta.ignore_aggregations == ["apikeys", "KeyEndpoint"]
    assert meta.postgres.prefer_simple_protocol is True
    assert meta.mysql.default_string_size == 512


def test_raw_pump_accepts_tyk_keys_and_nulls() -> None:
    meta = {
        k: v
        for k, v in TYK_AGGREGATE_META.items()
        if k not in ("track_all_paths", "ignore_tag_prefix_list", "store_analytics_per_minute", "ignore_aggregations")
    }
    config = load({"sql": {"type": "sql", "meta": {**meta, "postgres": None, "mysql": None}}})
    assert sql.Meta.model_validate(config.pumps["sql"].meta).postgres.prefer_simple_protocol is False


def test_mysql_is_accepted_with_tyks_connection_string() -> None:
    """Issue 11: ``type: mysql`` is Tyk's MySQL/MariaDB dialect (it was refused before)."""
    assert load({"sql": {"type": "sql", "meta": {"type": "mysql", "connection_string": "u:p@tcp(db:3306)/x"}}}).pumps
    meta = sql.Meta(type="mysql", connection_string="tyk:s3cret@tcp(db:3307)/analytics?parseTime=true")
    target = target_of(meta)
    assert (target.backend, target.description) == ("mysql", "mysql://tyk@db:3307/analytics")
    assert "s3cret" not in repr(target)
    assert sql.Meta(connection_string="mysql://u:p@h/x").type == "mysql"


def test_unknown_type_and_unknown_key_are_errors() -> None:
    errors = errors_of({"sql": {"type": "sql_aggregate", "meta": {"type": "oracle", "conection_string": "x"}}})
    assert any(e.startswith("pumps.sql.meta.type: Value error, unknown SQL type 'oracle'") for e in errors)
    assert any(e.startswith("pumps.sql.meta.conection_string: unknown key (expected one of:") for e in errors)


def test_postgres_needs_a_connection_string() -> None:
    errors = errors_of({"sql": {"type": "sql", "meta": {"type": "postgres"}}})
    assert errors == [
        "pumps.sql.meta.connection_string: Value error, required for type postgres, e.g. postgresql://user@host:5432/dbname (got '')"
    ]


@pytest.mark.parametrize(
    ("type_", "connection_string", "backend"),
    [
        ("", "postgresql://u@h/db", "postgres"),
        ("", "postgres://u@h/db", "postgres"),
        ("", "host=h dbname=db", "postgres"),
        ("", "/var/lib/pump/analytics.db", "sqlite"),
        ("", "", "sqlite"),
        ("PostgreSQL", "host=h", "postgres"),
        ("SQLite", "x.db", "sqlite"),
    ],
)
def test_backend_is_guessed_when_type_is_empty(type_: str, connection_string: str, backend: str) -> None:
    meta = sql.Meta(type=type_, connection_string=connection_string)
    assert meta.type == backend
    assert sql.Meta.model_validate(meta.model_dump()).type == backend  # the loader re-validates dumps


def test_sqlite_targets() -> None:
    assert target_of(sql.Meta(type="sqlite")).dsn == DEFAULT_SQLITE_PATH
    t = target_of(sql.Meta(type="sqlite", connection_string="sqlite:///tmp/a.db"))
    assert (t.dsn, t.uri, t.description) == ("/tmp/a.db", False, "sqlite:/tmp/a.db")
    u = target_of(sql.Meta(type="sqlite", connection_string="file:/tmp/a.db?mode=rwc"))
    assert (u.uri, u.description) == (True, "sqlite:file:/tmp/a.db")


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://tyk:s3cret@db.internal:6543/analytics?sslmode=verify-full",
        "host=db.internal port=6543 user=tyk password=s3cret dbname=analytics",
        "host=db.internal port=6543 user=tyk password='s3cret' dbname=analytics",
    ],
)
def test_target_description_never_holds_the_password(dsn: str) -> None:
    t = target_of(sql.Meta(type="postgres", connection_string=dsn))
    assert t.description == "postgresql://tyk@db.internal:6543/analytics"
    assert t.password == "s3cret"
    assert "s3cret" not in scrub(f"could not parse {dsn}", t.password)


def test_scrub_patterns() -> None:
    assert scrub("postgresql://u:pw@h/db") == "postgresql://u:<redacted>@h/db"
    assert scrub("user=u password=pw host=h") == "user=u password=<redacted> host=h"
    assert scrub("password = 'a b' x") == "password = <redacted> x"
    assert scrub("nothing secret") == "nothing secret"


def test_connect_defaults_do_not_override_the_connection_string() -> None:
    meta = sql.Meta(type="postgres", connection_string="host=h connect_timeout=3", postgres={"prefer_simple_protocol": True})
    kwargs = pg_connect_kwargs(meta, meta.connection_string.get_secret_value())
    assert "connect_timeout" not in kwargs
    assert kwargs["prepare_threshold"] is None
    assert kwargs["keepalives"] == PG_DEFAULTS["keepalives"]
    plain = pg_connect_kwargs(sql.Meta(type="postgres", connection_string="host=h"), "host=h")
    assert plain["connect_timeout"] == 10 and "prepare_threshold" not in plain


def test_unknown_ignore_aggregations_are_warned_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    config = load({"agg": {"type": "sql_aggregate", "meta": {"type": "sqlite", "ignore_aggregations": ["apikeys", "bogus"]}}})
    from pump.sinks import build
    from pump.sinks.base import SinkContext

    with caplog.at_level("WARNING"):
        build(SinkContext("agg", config.pumps["agg"], config))
    assert any(getattr(r, "unknown", "") == "bogus" for r in caplog.records)


def test_uptime_settings_come_from_uptime_pump_config() -> None:
    config = load(
        {"csv": {"type": "csv"}},
        uptime_pump_config={
            "uptime_type": "sql",
            "type": "postgres",
            "connection_string": "postgresql://u:pw@h/db",
            "table_sharding": True,
        },
    )
    meta = uptime_meta(config)
    assert (meta.type, meta.table_sharding, meta.rows_per_statement) == ("postgres", True, 1000)
    sink = build_uptime(config)
    assert sink.name == "uptime"
    assert sink.target.description == "postgresql://u@h:5432/db"  # type: ignore[attr-defined]


def test_uptime_mysql_needs_a_parsable_connection_string() -> None:
    with pytest.raises(ConfigError) as info:
        load({"csv": {"type": "csv"}}, uptime_pump_config={"uptime_type": "sql", "type": "mysql", "connection_string": "x"})
    assert info.value.errors[0].startswith(
        "uptime_pump_config.connection_string: Value error, expected user:password@tcp(host:3306)/dbname"
    )


def test_meta_model_rejects_garbage_types() -> None:
    with pytest.raises(ValidationError):
        sql.Meta(type="postgres", connection_string="host=h", batch_size=-1)


def test_config_examples_validate() -> None:
    from pump.config.load import load as load_file
    from tests.helpers import ROOT

    for name in ("pump.sql.yaml", "pump.sqlite.yaml"):
        config, _ = load_file(ROOT / "config" / name, environ={})
        assert {p.type for p in config.pumps.values()} == {"sql", "sql_aggregate"}
        assert config.uptime_pump_config is not None and config.uptime_pump_config.uptime_type == "sql"
        uptime_meta(config)


def test_infer_backend() -> None:
    assert infer_backend("  postgresql://x") == "postgres"
    assert infer_backend("dbname=x") == "postgres"
    assert infer_backend("./data/pump.sqlite") == "sqlite"
