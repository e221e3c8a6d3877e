"""Tyk's ``BaseMongoConf`` keys, validated (:class:`BaseMongoMeta` and its sized/collection
variants), and :func:`client_options`, their translation into pymongo options (TLS verified unless
the config says otherwise)."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from pump.redact import SecretDsn, redact_url
from pump.sinks.base import SinkMeta

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

#: Tyk's defaults when the size keys are unset or 0.
DEFAULT_MAX_INSERT_BATCH_BYTES = 10 * MIB
DEFAULT_MAX_DOCUMENT_BYTES = 10 * MIB
DEFAULT_CAP_BYTES = 5 * GIB

#: Database used when ``mongo_url`` names none (Tyk's documented examples all use this name).
DEFAULT_DATABASE = "tyk_analytics"

#: ``mongo_db_type`` values (Tyk's ``MongoType``).
STANDARD_MONGO, AWS_DOCUMENT_DB, COSMOS_DB = 0, 1, 2

_CONSISTENCY = {"": "primary", "strong": "primary", "monotonic": "primaryPreferred", "eventual": "nearest"}


class BaseMongoMeta(SinkMeta):
    """Tyk's ``BaseMongoConf``: every Mongo pump's connection settings."""

    mongo_url: SecretDsn = Field(
        SecretStr(""), validate_default=True, description="mongodb:// or mongodb+srv:// URL, including the database name"
    )
    mongo_use_ssl: bool = Field(False, description="connect with TLS (certificates are verified unless told otherwise)")
    mongo_ssl_insecure_skip_verify: bool = Field(False, description="accept any server certificate and host name (insecure)")
    mongo_ssl_allow_invalid_hostnames: bool = Field(False, description="verify the certificate but not the host name")
    mongo_ssl_ca_file: str = Field("", description="PEM file of the CAs to trust")
    mongo_ssl_pem_keyfile: str = Field("", description="PEM file with the client certificate and key (mutual TLS)")
    mongo_db_type: Literal[0, 1, 2] = Field(0, description="0 MongoDB, 1 AWS DocumentDB, 2 Azure CosmosDB")
    omit_index_creation: bool = Field(False, description="never create indexes")
    mongo_session_consistency: str = Field("", description="strong (default), monotonic or eventual: read preference")
    driver: str = Field("", description="Tyk's Go driver choice (mongo-go or mgo); accepted, no effect here")
    mongo_direct_connection: bool = Field(False, description="talk only to the given host, no replica-set discovery")

    @field_validator("mongo_url")
    @classmethod
    def _url_required(cls, v: SecretStr) -> SecretStr:
        url = v.get_secret_value().strip()
        if not url:
            raise ValueError("required: the MongoDB URL including the database, e.g. mongodb://user:pass@host:27017/tyk_analytics")
        if not url.startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError(f"must start with mongodb:// or mongodb+srv:// (got {redact_url(url)!r})")
        return SecretStr(url)

    @field_validator("mongo_session_consistency")
    @classmethod
    def _consistency(cls, v: str) -> str:
        if v.lower() not in _CONSISTENCY:
            raise ValueError("must be one of strong, monotonic, eventual (or empty)")
        return v.lower()

    @field_validator("driver")
    @classmethod
    def _driver(cls, v: str) -> str:
        if v not in ("", "mongo-go", "mgo"):
            raise ValueError("must be mongo-go or mgo (or empty); either way this pump uses pymongo")
        return v


class SizedMongoMeta(BaseMongoMeta):
    """Size limits of the raw pumps (Tyk's ``MongoConf``/``MongoSelectiveConf``)."""

    max_insert_batch_size_bytes: int = Field(0, ge=0, description="bytes per insert call (Tyk's estimate); 0 = 10 MiB")
    max_document_size_bytes: int = Field(0, ge=0, description="bytes of raw request+response+1 KiB per record; 0 = 10 MiB")

    @property
    def batch_bytes(self) -> int:
        return self.max_insert_batch_size_bytes or DEFAULT_MAX_INSERT_BATCH_BYTES

    @property
    def document_bytes(self) -> int:
        return self.max_document_size_bytes or DEFAULT_MAX_DOCUMENT_BYTES


class CollectionMeta(SizedMongoMeta):
    """``mongo`` (and the uptime pump): one named collection, optionally capped."""

    collection_name: str = Field("", description="the collection every record goes to")
    collection_cap_enable: bool = Field(False, description="create the collection capped (only if it does not exist yet)")
    collection_cap_max_size_bytes: int = Field(0, ge=0, description="cap size in bytes; 0 = 5 GiB")

    @property
    def cap_bytes(self) -> int:
        return self.collection_cap_max_size_bytes or DEFAULT_CAP_BYTES


def database_name(url: str) -> str:
    """The database named in the URL path, or :data:`DEFAULT_DATABASE`."""
    path = urlsplit(url).path.lstrip("/")
    return path.split("/", 1)[0] or DEFAULT_DATABASE


def client_options(meta: BaseMongoMeta, timeout: float = 0) -> dict[str, Any]:
    """pymongo keyword options for Tyk's settings (pure, so it is unit-tested).

    TLS is verified by default: only ``mongo_ssl_insecure_skip_verify`` (everything) or
    ``mongo_ssl_allow_invalid_hostnames`` (host name only) relax it. Options already in the URL
    win when the config leaves them unset. ``timeout`` is the pump's ``timeout`` (Tyk passes it to
    the driver as the connection timeout); without one, an unreachable server is reported after
    10 s so the delivery layer can back off instead of hanging.
    """
    wait_ms = int((timeout or 10) * 1000)
    opts: dict[str, Any] = {
        "tz_aware": True,
        "serverSelectionTimeoutMS": wait_ms,
        "connectTimeoutMS": wait_ms,
        "appname": "pump",
    }
    if meta.mongo_use_ssl:
        opts["tls"] = True
    if meta.mongo_ssl_insecure_skip_verify:
        opts["tlsInsecure"] = True
    elif meta.mongo_ssl_allow_invalid_hostnames:
        opts["tlsAllowInvalidHostnames"] = True
    if meta.mongo_ssl_ca_file:
        opts["tlsCAFile"] = meta.mongo_ssl_ca_file
    if meta.mongo_ssl_pem_keyfile:
        opts["tlsCertificateKeyFile"] = meta.mongo_ssl_pem_keyfile
    if meta.mongo_direct_connection:
        opts["directConnection"] = True
    if meta.mongo_session_consistency:
        opts["readPreference"] = _CONSISTENCY[meta.mongo_session_consistency]
    return opts
