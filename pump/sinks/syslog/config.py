"""The ``meta`` block of a ``syslog`` pump: Tyk's ``SyslogConf`` plus framing, format and TLS settings.

Tyk's ``log_level`` is Go's ``syslog.Priority``: facility and severity in one number (the PRI of
the message, 0-191), not a severity alone.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from pump.sinks.base import SinkMeta

DEFAULT_TAG = "syslog-pump"
DEFAULT_ADDR = "localhost:5140"


class Meta(SinkMeta):
    # --- Tyk's keys -------------------------------------------------------------------------------
    transport: Literal["udp", "tcp", "tls"] = Field("udp", description="udp, tcp (RFC 6587) or tls (RFC 5425)")
    network_addr: str = Field(DEFAULT_ADDR, description="host:port of the syslog receiver")
    log_level: int = Field(0, ge=0, le=191, description="PRI of every message: facility * 8 + severity (Go syslog.Priority)")
    tag: str = Field(DEFAULT_TAG, description="APP-NAME of every message")
    # --- ours -------------------------------------------------------------------------------------
    format: Literal["tyk", "json"] = Field("tyk", description="message text: Tyk's Go map text, or one JSON object")
    framing: Literal["octet-counting", "lf"] = Field("octet-counting", description="tcp/tls framing (RFC 6587)")
    hostname: str = Field("", description="HOSTNAME field; empty = this machine's name")
    max_message_bytes: int = Field(0, ge=0, le=64 << 20, description="longest message; 0 = 65000 for udp, unlimited on tcp/tls")
    timeout: float = Field(10, gt=0, le=3600, description="seconds to connect, and for a batch to be acknowledged by the receiver's TCP")
    ssl_ca_file: str = Field("", description="CA certificates to verify the receiver (tls); default: the system's")
    ssl_cert_file: str = ""
    ssl_key_file: str = ""
    ssl_server_name: str = Field("", description="name the certificate must carry; default: the host of network_addr")
    ssl_insecure_skip_verify: bool = False

    @field_validator("transport", mode="before")
    @classmethod
    def _transport(cls, v: object) -> object:
        return v.strip().lower() if isinstance(v, str) and v.strip() else ("udp" if v in ("", None) else v)

    @field_validator("network_addr")
    @classmethod
    def _addr(cls, v: str) -> str:
        v = v.strip() or DEFAULT_ADDR
        host, sep, port = v.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{v!r} is not host:port")
        return v

    @field_validator("tag")
    @classmethod
    def _tag(cls, v: str) -> str:
        v = v or DEFAULT_TAG
        if not re.fullmatch(r"[!-~]{1,48}", v):
            raise ValueError(f"{v!r}: an RFC 5424 APP-NAME is 1-48 printable ASCII characters without spaces")
        return v

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, v: str) -> str:
        if v and not re.fullmatch(r"[!-~]{1,255}", v):
            raise ValueError(f"{v!r}: a HOSTNAME is 1-255 printable ASCII characters without spaces")
        return v

    @model_validator(mode="after")
    def _pairs(self) -> Meta:
        if bool(self.ssl_cert_file) != bool(self.ssl_key_file):
            raise ValueError("ssl_cert_file and ssl_key_file must be set together (client certificate and its key)")
        return self

    @property
    def message_limit(self) -> int:
        return self.max_message_bytes or (65000 if self.transport == "udp" else 0)
