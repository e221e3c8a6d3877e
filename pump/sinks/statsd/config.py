"""The ``meta`` blocks of the ``statsd`` and ``dogstatsd`` pumps (Tyk's ``StatsdConf`` and
``DogStatsdConf``) plus how packets are sent.

Values Tyk only notices at the first write (a DogStatsD tag it does not know makes every write
fail) are refused by ``pump validate`` here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from pump.sinks.base import SinkMeta

#: The only fields Tyk's StatsD pump emits (as timings); others in ``fields`` are ignored there.
TIMING_FIELDS = ("request_time", "latency_total", "latency_upstream", "latency_gateway")
#: Keys of Tyk's StatsD mapping that ``tags`` may name (``method`` only with ``separated_method``).
STATSD_TAGS = (
    "path", "method", "response_code", "api_key", "time_stamp", "api_version", "api_name", "api_id", "org_id",
    "oauth_id", "raw_request", "raw_response", "ip_address", *TIMING_FIELDS,
)  # fmt: skip
#: DogStatsD tags Tyk knows.
DOG_TAGS = ("method", "response_code", "api_version", "api_name", "api_id", "org_id", "tracked", "path", "oauth_id")


def _address(v: str) -> str:
    v = v.strip()
    if v.startswith("unix://"):
        if len(v) == len("unix://"):
            raise ValueError("unix:// needs a socket path, e.g. unix:///var/run/datadog/dsd.socket")
        return v
    host, sep, port = v.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{v!r} is not host:port (or unix:///path for a Unix datagram socket)")
    return v


class SendMeta(SinkMeta):
    """How packets leave (ours, shared by both types)."""

    transport: Literal["udp", "tcp"] = Field("udp", description="udp (StatsD's default) or tcp; ignored for unix:// addresses")
    max_packet_bytes: int = Field(0, ge=0, le=65000, description="bytes per datagram; 0 = 1432 (UDP), 8192 (Unix socket)")
    send_timeout: float = Field(5, gt=0, le=3600, description="seconds to connect, and for a TCP batch to be acknowledged")


class Meta(SendMeta):
    # --- Tyk's keys -------------------------------------------------------------------------------
    address: str = Field("localhost:8125", description="host:port of the StatsD server")
    fields: list[str] = Field(default_factory=lambda: ["request_time"], description="timings to send, of " + ", ".join(TIMING_FIELDS))
    tags: list[str] = Field(default_factory=list, description="mapping values joined into the metric name")
    separated_method: bool = Field(False, description="tag 'path' without the method; 'method' becomes a tag of its own")
    # --- ours -------------------------------------------------------------------------------------
    prefix: str = Field("", description="prepended to every metric name (with a dot)")

    @field_validator("address")
    @classmethod
    def _addr(cls, v: str) -> str:
        return _address(v)

    @field_validator("fields")
    @classmethod
    def _fields(cls, v: list[str]) -> list[str]:
        unknown = [f for f in v if f not in TIMING_FIELDS]
        if unknown:
            raise ValueError(f"{', '.join(map(repr, unknown))}: Tyk's StatsD pump only sends the timings {', '.join(TIMING_FIELDS)}")
        return v

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: list[str]) -> list[str]:
        unknown = [t for t in v if t not in STATSD_TAGS]
        if unknown:
            raise ValueError(f"{', '.join(map(repr, unknown))} unknown; use any of {', '.join(STATSD_TAGS)}")
        return v


class DogMeta(SendMeta):
    # --- Tyk's keys -------------------------------------------------------------------------------
    namespace: str = Field("default", description="prefix of the metric names (a dot is appended)")
    address: str = Field("localhost:8125", description="host:port, or unix:///path for the agent's Unix socket")
    sample_rate: float = Field(1, ge=0, le=1, description="share of records sent (0 = 1, as Tyk)")
    async_uds: bool = Field(False, description="with a unix:// address: wait at most async_uds_write_timeout_seconds per packet")
    async_uds_write_timeout_seconds: int = Field(1, ge=0, le=3600)
    buffered: bool = Field(False, description="cap lines per datagram at buffered_max_messages")
    buffered_max_messages: int = Field(16, ge=0, le=100000)
    tags: list[str] = Field(default_factory=list, description="tags to send, of " + ", ".join(DOG_TAGS) + "; empty = Tyk's default set")

    @field_validator("address")
    @classmethod
    def _addr(cls, v: str) -> str:
        return _address(v)

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, v: str) -> str:
        return v or "default"

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: list[str]) -> list[str]:
        unknown = [t for t in v if t not in DOG_TAGS]
        if unknown:
            raise ValueError(f"{', '.join(map(repr, unknown))} unknown; Tyk's DogStatsD pump knows {', '.join(DOG_TAGS)}")
        return v

    @property
    def rate(self) -> float:
        return self.sample_rate or 1.0
