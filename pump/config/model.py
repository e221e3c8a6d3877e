"""The pump file: Tyk pump.conf keys (tyk-pump.md §5.1) plus our own ``delivery`` and ``telemetry``.

Every model forbids unknown keys, so a typo is an error that names the key instead of a setting
silently ignored. Keys that Tyk accepts but that have no effect here are still accepted — a Tyk
pump.conf must load unchanged — and ``load.py`` warns about them. Each pump's ``meta`` is
validated separately against the model of its sink type (see ``pump.sinks``).

Numbers are finite (``.inf`` and ``NaN`` are refused by every model, through :class:`StrictModel`)
and each one has a range a user would expect: values that validate and then misbehave — a purge
delay of a millisecond that spins the CPU, a claim of a million records that takes gigabytes —
are config errors naming the key and the range. Secrets are ``SecretStr`` (``pump.redact``).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ByteSize, ConfigDict, Field, PrivateAttr, SecretStr, field_validator, model_validator

from pump.config.analytics import Conditions, Mask
from pump.redact import Secret, SecretDsn, note_secret_fields

#: Records per claim at most: a claim is held in memory whole (about 2 KB a record decoded),
#: ``max_batches_in_flight`` of them at a time.
MAX_CLAIM = 100_000
#: ``max_record_size`` at most (1 GiB: more than any raw payload a gateway records).
MAX_RECORD_SIZE = 1 << 30


def drop_nulls(data: Any, keep: frozenset[str] = frozenset()) -> Any:
    """Tyk JSON files often carry ``"filters": null``, ``"postgres": null``…; Go reads ``null``
    as the field's zero value, so a null here means "the default". Keys in ``keep`` (fields whose
    default *is* ``None``) keep their ``None``: dropping them changes nothing on input, and on a
    validated assignment pydantic passes the whole model's values through this validator, where
    a dropped key would vanish from the model."""
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if v is not None or k in keep}
    return data


class StrictModel(BaseModel):
    """Base of every model of the pump file, sink metas included: unknown keys are errors,
    non-finite numbers (``.inf``, ``NaN``) are refused whatever the field, ``null`` means the
    default (:func:`drop_nulls`), and ``SecretStr`` fields are known to the redaction of previews
    (:func:`pump.redact.note_secret_fields`)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)

    _none_defaults: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        note_secret_fields(cls)
        names: set[str] = set()
        for name, field in cls.model_fields.items():
            if not field.is_required() and field.default is None:
                names.add(name)
                if field.alias:
                    names.add(field.alias)
        cls._none_defaults = frozenset(names)

    @model_validator(mode="before")
    @classmethod
    def _nulls_to_defaults(cls, data: Any) -> Any:
        return drop_nulls(data, cls._none_defaults)


class Model(StrictModel):
    """Base for every section of the core config: also validated on assignment."""

    model_config = ConfigDict(validate_assignment=True)


class IamAuth(Model):
    """GCP IAM auth for Redis (Tyk ``iam_auth``); accepted for compatibility, not implemented."""

    enabled: bool = False
    provider: str = "gcp"
    service_account: str = ""
    token_refresh_before_expiry: str = "5m"


class StorageConfig(Model):
    """``analytics_storage_config``: where the gateway buffers records (Redis)."""

    type: Literal["redis", ""] = "redis"
    host: str = "localhost"
    port: int = Field(6379, ge=0, le=65535, description="0 = 6379")
    hosts: dict[str, str] | None = None
    addrs: list[str] = Field(default_factory=list)
    master_name: str = ""
    sentinel_password: Secret = SecretStr("")
    username: str = ""
    password: Secret = SecretStr("")
    database: int = Field(0, ge=0, le=65535)
    timeout: float = Field(5, ge=0, le=300, description="dial/read/write timeout in seconds (Tyk: seconds); 0 = 5")
    optimisation_max_idle: int = Field(0, ge=0, le=10000, description="accepted; no effect (as in Tyk's v9 driver)")
    optimisation_max_active: int = Field(500, ge=0, le=10000, description="connections at most; 0 = 500")
    enable_cluster: bool = False
    key_prefix: str = ""
    redis_key_prefix: str = ""
    use_ssl: bool = False
    redis_use_ssl: bool = False
    ssl_insecure_skip_verify: bool = False
    redis_ssl_insecure_skip_verify: bool = False
    ssl_ca_file: str = ""
    ssl_cert_file: str = ""
    ssl_key_file: str = ""
    ssl_min_version: str = ""
    ssl_max_version: str = ""
    iam_auth: IamAuth | None = None

    @property
    def prefix(self) -> str:
        """The key prefix in force: ``key_prefix``, else the legacy ``redis_key_prefix``, else Tyk's default."""
        return self.key_prefix or self.redis_key_prefix or "analytics-"

    @property
    def tls(self) -> bool:
        return self.use_ssl or self.redis_use_ssl

    @property
    def tls_skip_verify(self) -> bool:
        return self.ssl_insecure_skip_verify or self.redis_ssl_insecure_skip_verify

    def addresses(self) -> list[tuple[str, int]]:
        """``addrs`` wins, then the deprecated ``hosts`` map, then ``host``+``port`` (Tyk's order)."""
        raw = list(self.addrs) or [f"{h}:{p}" for h, p in (self.hosts or {}).items()]
        if not raw:
            return [(self.host, self.port or 6379)]
        out = []
        for item in raw:
            host, _, port = item.rpartition(":")
            out.append((host or item, int(port) if port.isdigit() else 6379))
        return out


class Filters(Model):
    """Per-pump allow and deny lists (tyk-pump.md §5.1); deny always wins."""

    org_ids: list[str] = Field(default_factory=list)
    api_ids: list[str] = Field(default_factory=list)
    response_codes: list[int] = Field(default_factory=list)
    skip_org_ids: list[str] = Field(default_factory=list)
    skip_api_ids: list[str] = Field(default_factory=list)
    skip_response_codes: list[int] = Field(default_factory=list)

    def is_empty(self) -> bool:
        return not any(getattr(self, name) for name in type(self).model_fields)


class Delivery(Model):
    """How one pump is fed and retried. The top-level ``delivery`` sets defaults for every pump;
    ``pumps.NAME.delivery`` overrides single keys.

    Defaults follow the peers' lessons: unlimited retries with capped, fully jittered backoff
    (never drop silently), a bounded in-memory queue per pump (bounded memory), and parking of a
    stalled pump's share in its own Redis backlog so the other pumps keep going.
    """

    queue_records: int = Field(
        20000, ge=1, le=1_000_000, description="records held in memory for this pump before its share is parked in Redis"
    )
    concurrency: int = Field(1, ge=1, le=64, description="batches written at the same time")
    max_attempts: int = Field(0, ge=0, le=1_000_000, description="0 = retry forever; else dead-letter after this many attempts")
    max_age: float = Field(
        0, ge=0, le=30 * 86400, description="seconds (30 days at most); 0 = no limit; else dead-letter records that failed for longer"
    )
    backoff_initial: float = Field(0.5, ge=0.001, le=3600, description="seconds before the first retry")
    backoff_max: float = Field(30, ge=0.001, le=3600, description="cap of the exponential backoff, seconds")
    when_full: Literal["park", "wait"] = Field(
        "park",
        description="a healthy pump whose queue is full while another pump has room: park its share in its Redis "
        "backlog so the others go on (park), or make everyone wait for it (wait). When no other pump has room it "
        "always waits: parking would only cost a second decode",
    )


class DeliveryOverrides(Model):
    """``pumps.NAME.delivery``: any subset of :class:`Delivery`."""

    queue_records: int | None = Field(None, ge=1, le=1_000_000)
    concurrency: int | None = Field(None, ge=1, le=64)
    max_attempts: int | None = Field(None, ge=0, le=1_000_000)
    max_age: float | None = Field(None, ge=0, le=30 * 86400)
    backoff_initial: float | None = Field(None, ge=0.001, le=3600)
    backoff_max: float | None = Field(None, ge=0.001, le=3600)
    when_full: Literal["park", "wait"] | None = None


class DeliveryDefaults(Delivery):
    """Top-level ``delivery``: pump defaults plus the settings of the claim/ack machinery."""

    instance_id: str = Field(default_factory=socket.gethostname, description="names this pump's claims in Redis")
    namespace: str = Field("pump", min_length=1, description="prefix of the pump's own Redis keys")
    lease_seconds: float = Field(60, ge=2, le=3600, description="a claim not renewed for this long is returned to its list")
    wait_replicas: int | None = Field(
        None,
        ge=0,
        le=16,
        description="replicas that must have each claim (Redis WAIT) before its records reach a sink; "
        "default 1 with Sentinel (master_name), else 0 (set 1 for a Redis Cluster with replicas)",
    )
    wait_replicas_timeout: float = Field(1.0, ge=0.01, le=60, description="seconds a claim waits for its replicas")
    claim_size: int = Field(0, ge=0, le=MAX_CLAIM, description="records per claim; 0 = purge_chunk, or 5000")
    max_batches_in_flight: int = Field(4, ge=1, le=64, description="claimed batches not yet acknowledged, at most")
    max_memory: ByteSize = Field(
        ByteSize(96 << 20),
        ge=16 << 20,
        le=1 << 40,
        description="memory that claimed, unacknowledged records may take, the pump's whole (split between its workers; "
        "charged 4 x payload + 1 KiB a record); claims pause when full",
    )

    @field_validator("instance_id")
    @classmethod
    def _no_separator(cls, v: str) -> str:
        if "|" in v:
            raise ValueError("must not contain '|'")
        return v or socket.gethostname()


class Telemetry(Model):
    """Self-metrics, readiness and shutdown (no Tyk equivalent)."""

    metrics_address: str = Field("", description="host:port for /metrics; empty = served on the health port")
    ready_failing_after: float = Field(120, ge=0.1, le=86400, description="seconds a pump may fail before /ready says 503")
    shutdown_timeout: float = Field(25, ge=0.1, le=3600, description="seconds to finish in-flight batches after SIGTERM")
    health_bind: str = Field(
        "0.0.0.0", description="address the health listener binds: 0.0.0.0 (every interface, the default), 127.0.0.1, ::"
    )
    health_enabled: bool = Field(True, description="serve /health, /ready and /metrics on health_check_endpoint_port")

    @field_validator("health_bind")
    @classmethod
    def _bind(cls, v: str) -> str:
        return check_host(v.strip(), "an address to listen on without a port (the port is health_check_endpoint_port)")

    @field_validator("metrics_address")
    @classmethod
    def _metrics_address(cls, v: str) -> str:
        v = v.strip()
        if not v:
            return v
        host, sep, port = v.rpartition(":")
        if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"{v!r}: expected host:port with a port from 1 to 65535, e.g. 127.0.0.1:9090 or :9090")
        check_host(host, "host:port, e.g. 127.0.0.1:9090 (an IPv4 address or a host name)")
        return v


_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$")


def check_host(host: str, expected: str) -> str:
    """An IP address or host name to listen on (empty means every interface)."""
    if not host:
        return host
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOSTNAME.match(host):
            raise ValueError(f"{host!r} is not {expected}") from None
    return host


class PumpConfig(Model):
    """One entry of ``pumps``. ``meta`` stays a plain dict here; it is validated per sink type by
    the config loader, which keeps the validated model (:meth:`set_meta`) so building the sink
    does not validate it again."""

    type: str = ""
    name: str = ""
    meta: dict[str, Any] = Field(default_factory=dict)
    filters: Filters = Field(default_factory=lambda: Filters())
    # Ours (issue 13): routing conditions, PII masking, user-agent fields; pump.transforms applies them.
    conditions: Conditions = Field(default_factory=lambda: Conditions())
    mask: Mask = Field(default_factory=lambda: Mask())
    user_agent_fields: bool = False
    extra_dimensions: list[Literal["eventkinds", "browsers", "platforms"]] = Field(
        default_factory=list, description="aggregate pumps: our extra dimensions (pump.aggregate.extra)"
    )
    timeout: float = Field(0, ge=0, le=3600, description="seconds per write; 0 = no limit")
    omit_detailed_recording: bool = False
    max_record_size: int = Field(0, ge=0, le=MAX_RECORD_SIZE, description="bytes of raw_request/raw_response kept; 0 = all")
    ignore_fields: list[str] = Field(default_factory=list)
    raw_request_decoded: bool = False
    raw_response_decoded: bool = False
    delivery: DeliveryOverrides = Field(default_factory=lambda: DeliveryOverrides())
    _validated: tuple[dict[str, Any], BaseModel] | None = PrivateAttr(default=None)

    def set_meta(self, meta: BaseModel) -> None:
        """Keep the sink's validated ``meta`` model; ``meta`` becomes its dump (what ``pump validate``
        shows and the environment overrides address)."""
        self.meta = meta.model_dump()
        self._validated = (self.meta, meta)

    def validated_meta(self) -> BaseModel | None:
        """The model :meth:`set_meta` kept, while ``meta`` is still the dict it was dumped to."""
        if self._validated is not None and self._validated[0] is self.meta:
            return self._validated[1]
        return None


class UptimeConfig(Model):
    """``uptime_pump_config``: Tyk's Mongo and SQL settings merged, plus ``uptime_type``."""

    uptime_type: Literal["mongo", "sql", ""] = "mongo"
    # Mongo (BaseMongoConf + MongoConf)
    mongo_url: SecretDsn = SecretStr("")
    collection_name: str = "tyk_uptime_analytics"
    mongo_use_ssl: bool = False
    mongo_ssl_insecure_skip_verify: bool = False
    mongo_ssl_allow_invalid_hostnames: bool = False
    mongo_ssl_ca_file: str = ""
    mongo_ssl_pem_keyfile: str = ""
    mongo_db_type: int = 0
    omit_index_creation: bool = False
    mongo_session_consistency: str = ""
    driver: str = ""
    mongo_direct_connection: bool = False
    max_insert_batch_size_bytes: int = 0
    max_document_size_bytes: int = 0
    collection_cap_enable: bool = False
    collection_cap_max_size_bytes: int = 0
    # SQL (SQLConf)
    type: str = ""
    connection_string: SecretDsn = SecretStr("")
    postgres: dict[str, Any] = Field(default_factory=dict)
    mysql: dict[str, Any] = Field(default_factory=dict)
    table_sharding: bool = False
    log_level: str = ""
    batch_size: int = 0
    migrate_sharded_tables: bool = False
    migrate: bool = False  # ours: convert tables an older version of this pump made (see docs/sinks/sql.md)
    meta_env_prefix: str = ""


class Config(Model):
    """The whole pump file."""

    analytics_storage_type: Literal["redis", ""] = "redis"
    analytics_storage_config: StorageConfig = Field(default_factory=lambda: StorageConfig())
    purge_delay: float = Field(10, ge=0.1, le=3600, description="seconds between drains; Tyk's 0 would never purge")
    purge_chunk: int = Field(0, ge=0, le=MAX_CLAIM, description="records per claim; 0 = 5000")
    storage_expiration_time: int = Field(60, ge=0, le=365 * 86400, description="accepted; no effect here")
    uptime_pump_config: UptimeConfig | None = None
    dont_purge_uptime_data: bool = False
    pumps: dict[str, PumpConfig] = Field(default_factory=dict)
    health_check_endpoint_name: str = "health"
    health_check_endpoint_port: int = Field(8083, ge=0, le=65535)
    log_level: Literal["debug", "info", "warn", "warning", "error"] = "info"
    log_format: Literal["text", "json", "legacy"] = "text"
    omit_detailed_recording: bool = False
    max_record_size: int = Field(0, ge=0, le=MAX_RECORD_SIZE)
    # Accepted for compatibility with Tyk pump.conf; see load.NO_EFFECT for what they do here.
    statsd_connection_string: str = ""
    statsd_prefix: str = ""
    enable_http_profiler: bool = False
    omit_config_file: bool = False
    raw_request_decoded: bool = False
    raw_response_decoded: bool = False
    kv: dict[str, Any] | None = None
    # Ours.
    workers: int | Literal["auto"] = Field(
        "auto", description="claiming processes of `pump run` (pump/supervisor.py): 1 to 256, or auto = the CPUs usable"
    )
    delivery: DeliveryDefaults = Field(default_factory=lambda: DeliveryDefaults())
    telemetry: Telemetry = Field(default_factory=lambda: Telemetry())

    @field_validator("workers", mode="before")
    @classmethod
    def _auto(cls, v: Any) -> Any:
        text = str(v).strip().lower()
        if text == "auto":
            return text
        if isinstance(v, bool) or not text.isdigit() or not 1 <= int(text) <= 256:
            raise ValueError("give a number of processes from 1 to 256, or auto (the CPUs this pump may use)")
        return int(text)

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return v.lower() if isinstance(v, str) else v

    @field_validator("log_level", mode="before")
    @classmethod
    def _empty_level(cls, v: Any) -> Any:
        return "info" if v == "" else v

    @field_validator("log_format", mode="before")
    @classmethod
    def _empty_format(cls, v: Any) -> Any:
        return "text" if v == "" else v

    def claim_size(self) -> int:
        """Records per claim: ``delivery.claim_size``, else ``purge_chunk``, else 5000 (always bounded)."""
        return self.delivery.claim_size or self.purge_chunk or 5000

    def delivery_for(self, pump: str) -> Delivery:
        """The delivery settings of one pump: the defaults with its overrides applied."""
        base = {k: getattr(self.delivery, k) for k in Delivery.model_fields}
        overrides = self.pumps[pump].delivery.model_dump(exclude_none=True)
        return Delivery(**(base | overrides))
