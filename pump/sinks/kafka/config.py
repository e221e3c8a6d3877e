"""The ``meta`` block of a ``kafka`` pump: every key of Tyk's ``KafkaConf`` plus a few of ours.

Tyk accepts values that only fail at the first write (an unknown SASL mechanism is a warning
there, a negative ``batch_bytes`` an error log, an unparsable ``timeout`` a fatal exit); here each
is refused by ``pump validate`` with the key named.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator

from pump.redact import Secret
from pump.sinks.base import SinkMeta

#: Tyk's SASL mechanisms (``plain``, ``scram``) plus librdkafka's names, which we also accept.
SASL_MECHANISMS = {"plain": "PLAIN", "scram": "SCRAM", "scram-sha-256": "SCRAM-SHA-256", "scram-sha-512": "SCRAM-SHA-512"}
#: Tyk's ``sasl_algorithm`` values for ``scram``.
SCRAM_ALGORITHMS = {"": "SCRAM-SHA-256", "sha-256": "SCRAM-SHA-256", "sha-512": "SCRAM-SHA-512"}

_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def go_duration_seconds(text: str) -> float:
    """Go's ``time.ParseDuration`` (``"1.5s"``, ``"1m30s"``, ``"300ms"``) in seconds; a bare
    number is seconds, as Tyk's Kafka pump falls back to ``strconv.ParseFloat``."""
    s = text.strip()
    try:
        return float(s)
    except ValueError:
        pass
    sign = -1.0 if s.startswith("-") else 1.0
    body = s.lstrip("+-")
    pos, total = 0, 0.0
    for m in _GO_PART.finditer(body):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _GO_UNITS[m.group(2)]
        pos = m.end()
    if not body or pos != len(body):
        raise ValueError(f"{text!r} is not a duration; write seconds (10) or a Go duration ('10s', '1m30s', '500ms')")
    return sign * total


class Meta(SinkMeta):
    # --- Tyk's keys -------------------------------------------------------------------------------
    broker: list[str] = Field(default_factory=list, description="bootstrap brokers host:port (a list, or one comma-separated string)")
    client_id: str = Field("", description="client.id of the producer; empty = 'tyk-pump'")
    topic: str = Field(..., description="topic the records are produced to")
    timeout: float = Field(0, ge=0, le=3600, description="seconds (or a Go duration) per connect and request; 0 = 10 s")
    compressed: bool = Field(False, description="snappy compression, as Tyk")
    meta_data: dict[str, str] = Field(default_factory=dict, description="static keys added to every message")
    use_ssl: bool = False
    ssl_insecure_skip_verify: bool = False
    ssl_cert_file: str = ""
    ssl_key_file: str = ""
    ssl_ca_file: str = ""
    sasl_mechanism: str = Field("", description="plain or scram (also scram-sha-256, scram-sha-512)")
    sasl_username: str = ""
    sasl_password: Secret = SecretStr("")
    sasl_algorithm: str = Field("", description="for scram: sha-256 (default) or sha-512")
    batch_bytes: int = Field(0, ge=0, le=1 << 30, description="bytes per produce request to one partition; 0 = 1 MB")
    # --- ours -------------------------------------------------------------------------------------
    key_by_record_id: bool = Field(True, description="message key = the record id, so consumers can deduplicate")
    delivery_timeout: float = Field(30, gt=0, le=3600, description="seconds a message may wait for its delivery report")
    acks: str = Field("all", description="'all' (required by the idempotent producer), '1' or '0' (disables idempotence)")
    producer_config: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="extra librdkafka producer settings, e.g. linger.ms (ours win over these)"
    )

    @field_validator("broker", mode="before")
    @classmethod
    def _brokers(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = v.split(",")
        if isinstance(v, list):
            return [str(b).strip() for b in v if str(b).strip()]
        return v

    @field_validator("broker")
    @classmethod
    def _broker_list(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("list at least one broker, e.g. ['localhost:9092']")
        for b in v:
            host, sep, port = b.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{b!r} is not host:port")
        return v

    @field_validator("topic")
    @classmethod
    def _topic(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", v) or v in (".", ".."):
            raise ValueError(f"{v!r} is not a Kafka topic name (1-249 of letters, digits, '.', '_', '-')")
        return v

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, v: Any) -> Any:
        return go_duration_seconds(v) if isinstance(v, str) else v

    @field_validator("sasl_mechanism")
    @classmethod
    def _mechanism(cls, v: str) -> str:
        if v and v.lower() not in SASL_MECHANISMS:
            raise ValueError(f"{v!r} is not supported; use plain or scram (with sasl_algorithm sha-256 or sha-512)")
        return v

    @field_validator("sasl_algorithm")
    @classmethod
    def _algorithm(cls, v: str) -> str:
        if v.lower() not in SCRAM_ALGORITHMS:
            raise ValueError(f"{v!r} is not supported; use sha-256 or sha-512")
        return v

    @field_validator("acks")
    @classmethod
    def _acks(cls, v: str) -> str:
        if v not in ("all", "-1", "1", "0"):
            raise ValueError(f"{v!r}: use all, 1 or 0")
        return v

    @model_validator(mode="after")
    def _pairs(self) -> Meta:
        if bool(self.ssl_cert_file) != bool(self.ssl_key_file):
            raise ValueError("ssl_cert_file and ssl_key_file must be set together (client certificate and its key)")
        if self.sasl_mechanism and not self.sasl_username:
            raise ValueError("sasl_mechanism is set: give sasl_username and sasl_password")
        return self

    @property
    def mechanism(self) -> str:
        """librdkafka's ``sasl.mechanisms`` value, or '' for no SASL."""
        name = SASL_MECHANISMS.get(self.sasl_mechanism.lower(), "")
        return SCRAM_ALGORITHMS[self.sasl_algorithm.lower()] if name == "SCRAM" else name
