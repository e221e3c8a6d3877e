"""A SQL pump's settings and where they point: Tyk's ``SQLConf`` keys, validated, and :class:`Target`.

A PostgreSQL connection string libpq cannot parse, or a MySQL one of neither Tyk's Go form nor a
``mysql://`` URL, is refused at ``pump validate``. :class:`Target` holds where to connect plus a description that never
contains the password (``connection_string`` is a ``SecretStr``; :func:`target_of` is where its
value is taken out).
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from pump.config.model import StrictModel
from pump.redact import SecretDsn, scrub
from pump.sinks.base import SinkMeta

#: The backends this pump speaks (MySQL and MariaDB are ``mysql``, as in Tyk).
BACKENDS = ("postgres", "mysql", "sqlite")
#: Where an SQLite pump writes when no connection_string is given.
DEFAULT_SQLITE_PATH = "pump.sqlite"
#: PostgreSQL connection defaults, applied only when the connection string does not set them.
PG_DEFAULTS: dict[str, Any] = {
    "connect_timeout": 10,
    "application_name": "pump",
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}


class _Options(StrictModel):
    pass


class PostgresOptions(_Options):
    """Tyk's ``postgres`` block. ``prefer_simple_protocol`` turns off server-side prepared
    statements (needed behind PgBouncer in transaction mode), as it does in Tyk."""

    prefer_simple_protocol: bool = False


class MysqlOptions(_Options):
    """Tyk's ``mysql`` block: accepted so a Tyk file loads, without effect (the tables' types are
    fixed here: ``LONGTEXT`` text, ``DATETIME(6)`` times, see docs/sinks/sql.md)."""

    default_string_size: int = 256
    disable_datetime_precision: bool = False
    dont_support_rename_index: bool = False
    dont_support_rename_column: bool = False
    skip_initialize_with_version: bool = False


_PG_URL = re.compile(r"^postgres(ql)?://", re.I)
_PG_KEYWORDS = re.compile(r"(^|\s)(host|hostaddr|dbname|user|port|service|sslmode)\s*=", re.I)


_MYSQL = re.compile(r"^(mysql|mariadb)://|@(tcp|unix)\(", re.I)


def infer_backend(connection_string: str) -> str:
    """``postgres`` for a libpq URL or ``key=value`` string, ``mysql`` for a ``mysql://`` URL or
    Go's ``user:pass@tcp(host:port)/db``, else ``sqlite`` (a file path)."""
    s = connection_string.strip()
    if _MYSQL.search(s):
        return "mysql"
    return "postgres" if _PG_URL.match(s) or _PG_KEYWORDS.search(s) else "sqlite"


class SqlMeta(SinkMeta):
    """Tyk's ``SQLConf`` (tyk-pump.md §4 "SQL family"), shared by ``sql`` and ``sql_aggregate``."""

    type: str = Field("", description="postgres or sqlite; empty = guessed from connection_string")
    connection_string: SecretDsn = Field(
        SecretStr(""), validate_default=True, description="libpq URL/keywords for postgres, a file path for sqlite"
    )
    postgres: PostgresOptions = Field(default_factory=PostgresOptions)
    mysql: MysqlOptions = Field(default_factory=MysqlOptions)
    table_sharding: bool = Field(False, description="one table per day: <table>_YYYYMMDD")
    log_level: str = Field("", description="Tyk's gorm log level; accepted, no effect (use the pump's log_level)")
    batch_size: int = Field(1000, ge=0, description="rows per statement / COPY chunk; 0 = 1000")
    migrate_sharded_tables: bool = Field(False, description="at start, add missing columns to every existing shard")
    omit_index_creation: bool = Field(False, description="do not create Tyk's indexes")
    migrate: bool = Field(False, description="ours: at start, convert tables an older version of this pump made to Tyk's column types")
    threshold_len_tag_list: int = Field(1000, description="accepted for Tyk compatibility; no effect in SQL (as in Tyk)")

    @field_validator("type", mode="before")
    @classmethod
    def _type(cls, v: Any) -> Any:
        if not isinstance(v, str):
            return v
        name = v.strip().lower()
        if name == "mariadb":
            name = "mysql"
        if name == "postgresql":
            name = "postgres"
        if name not in ("", *BACKENDS):
            raise ValueError(f"unknown SQL type {v!r}; expected one of: postgres, mysql, sqlite")
        return name

    @field_validator("connection_string")
    @classmethod
    def _required_for_postgres(cls, v: SecretStr, info: ValidationInfo) -> SecretStr:
        text = v.get_secret_value().strip()
        backend = info.data.get("type") or (infer_backend(text) if text else "sqlite")
        if backend == "postgres" and not text:
            raise ValueError("required for type postgres, e.g. postgresql://user@host:5432/dbname")
        if backend == "postgres":
            check_pg_dsn(text)
        if backend == "mysql":
            import importlib.util

            if importlib.util.find_spec("pymysql") is None:
                raise ValueError("type mysql needs the PyMySQL driver: pip install 'pump[mysql]'")
            if not text:
                raise ValueError("required for type mysql, e.g. user:password@tcp(db:3306)/analytics")
            parse_mysql_dsn(text)
        return v

    @model_validator(mode="after")
    def _backend(self) -> SqlMeta:
        if not self.type:
            text = self.connection_string.get_secret_value()
            self.type = infer_backend(text) if text.strip() else "sqlite"
        return self

    @property
    def rows_per_statement(self) -> int:
        return self.batch_size or 1000


def check_pg_dsn(dsn: str) -> None:
    """Refuse a connection string libpq cannot parse, at ``pump validate`` rather than at every
    retry. The parser's own message may quote the password: it is scrubbed (the password was
    remembered when the field was validated)."""
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        return  # the driver is missing: reported as such when the pump is built
    try:
        conninfo_to_dict(dsn)
    except Exception as exc:
        reason = scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)[:200]
        raise ValueError(
            f"libpq cannot parse it ({reason}); in a postgresql:// URL percent-encode @ % : / and spaces in the user "
            "name and password (%40 %25 %3A %2F %20), or use key=value keywords (host=db user=tyk dbname=analytics …)"
        ) from None


@dataclass(frozen=True, slots=True)
class Target:
    """Where a SQL pump writes. ``description`` is safe to log; ``dsn`` and ``password`` are the
    secret values taken out of ``connection_string``, for the driver only (kept out of ``repr``)."""

    backend: str
    dsn: str = field(repr=False)
    description: str
    password: str = field(default="", repr=False)
    uri: bool = False

    @property
    def is_postgres(self) -> bool:
        return self.backend == "postgres"

    @property
    def is_mysql(self) -> bool:
        return self.backend == "mysql"


def target_of(meta: SqlMeta) -> Target:
    dsn = meta.connection_string.get_secret_value().strip()
    if meta.type == "mysql":
        _, description, password = parse_mysql_dsn(dsn)
        return Target("mysql", dsn, description, password)
    return _pg_target(dsn) if meta.type == "postgres" else _sqlite_target(dsn)


def _pg_target(dsn: str) -> Target:
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(dsn)
    except Exception:  # the parser's message may echo the string, password included
        return Target("postgres", dsn, "postgres (connection_string could not be parsed)")
    host = str(parts.get("host") or parts.get("hostaddr") or "localhost")
    port = str(parts.get("port") or 5432)
    user = str(parts.get("user") or "")
    db = str(parts.get("dbname") or user or "")
    who = f"{user}@" if user else ""
    password = str(parts.get("password") or "")
    # Scrubbed too: libpq takes what follows an unescaped "@" of a password for the host name.
    return Target("postgres", dsn, scrub(f"postgresql://{who}{host}:{port}/{db}", password), password)


def _sqlite_target(text: str) -> Target:
    path = text or DEFAULT_SQLITE_PATH
    if path.lower().startswith("sqlite:"):
        path = path[len("sqlite:") :].removeprefix("//")
    uri = path.startswith("file:")
    shown = scrub(path.split("?", 1)[0]) if uri else path
    return Target("sqlite", path, f"sqlite:{shown}", uri=uri)


def pg_connect_kwargs(meta: SqlMeta, dsn: str) -> dict[str, Any]:
    """Keyword arguments for ``AsyncConnection.connect``: our defaults for what the string leaves
    unset (timeouts, keepalives), and ``prepare_threshold=None`` for ``prefer_simple_protocol``."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        given = conninfo_to_dict(dsn)
    except Exception:
        given = {}
    kwargs: dict[str, Any] = {k: v for k, v in PG_DEFAULTS.items() if k not in given}
    if meta.postgres.prefer_simple_protocol:
        kwargs["prepare_threshold"] = None
    return kwargs


_GO_DSN = re.compile(r"^(?:(?P<user>[^:@]*)(?::(?P<password>.*))?@)?(?P<net>tcp|unix)?\((?P<addr>[^)]*)\)/(?P<db>[^?]*)(?:\?.*)?$")


def parse_mysql_dsn(dsn: str) -> tuple[dict[str, Any], str, str]:
    """A MySQL DSN, Tyk's Go form or a URL, as ``(pymysql.connect kwargs, description without the password, password)``."""
    text = dsn.strip()
    kwargs: dict[str, Any] = {}
    if text.lower().startswith(("mysql://", "mariadb://")):
        url = urllib.parse.urlsplit(text)
        kwargs = {"host": url.hostname or "localhost", "port": url.port or 3306, "database": url.path.lstrip("/")}
        user, password = urllib.parse.unquote(url.username or ""), urllib.parse.unquote(url.password or "")
    else:
        m = _GO_DSN.match(text)
        if m is None:
            raise ValueError("expected user:password@tcp(host:3306)/dbname (Tyk's form) or mysql://user:password@host:3306/dbname")
        user, password = m["user"] or "", m["password"] or ""
        if m["net"] == "unix":
            kwargs = {"unix_socket": m["addr"], "database": m["db"]}
        else:
            host, _, port = (m["addr"] or "127.0.0.1:3306").rpartition(":")
            kwargs = {"host": host or "127.0.0.1", "port": int(port or 3306), "database": m["db"]}
    kwargs.update(user=user, password=password)
    where = kwargs.get("unix_socket") or f"{kwargs.get('host')}:{kwargs.get('port')}"
    return kwargs, scrub(f"mysql://{user + '@' if user else ''}{where}/{kwargs['database']}", password), password
