"""The ``meta`` block of a ``prometheus`` pump: Tyk's ``PrometheusConf`` keys plus ours.

Tyk logs and skips a custom metric it cannot build (a bad ``metric_type``, a label it has no
value for — which then fails at every write) and panics on a name registered twice; here each of
those is a config error that ``pump validate`` names, with the fix.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from pump.config.model import StrictModel, check_host
from pump.sinks.base import SinkMeta
from pump.sinks.prometheus.families import BUILTIN_NAMES, LABEL_FIELDS, TYK_BUCKETS

_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
#: Label sets kept per family by default: far above what per-API or per-code families reach, low
#: enough that a per-key or per-path family fed unbounded values stays a few MB.
DEFAULT_MAX_SERIES = 10_000


class CustomMetric(StrictModel):
    """One entry of ``custom_metrics`` (Tyk's ``PrometheusMetric``)."""

    name: str
    help: str = ""
    metric_type: Literal["counter", "histogram"]
    buckets: list[float] = Field(default_factory=list, description="histogram upper bounds in ms; empty = Tyk's buckets")
    obfuscate_api_keys: bool = Field(False, description="show api_key/key labels as **** + the last characters")
    obfuscate_api_keys_length: int = Field(4, ge=0, le=128, description="characters kept by obfuscate_api_keys; 0 = 4")
    labels: list[str] = Field(default_factory=list, description="record fields, in order")
    mcp_only: bool = Field(False, description="count MCP records only")

    @field_validator("metric_type", mode="before")
    @classmethod
    def _type(cls, v: object) -> object:
        return v.strip().lower() if isinstance(v, str) else v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _METRIC_NAME.match(v):
            raise ValueError(f"{v!r} is not a Prometheus metric name (letters, digits, '_' and ':', not starting with a digit)")
        return v

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: list[str]) -> list[str]:
        unknown = [label for label in v if label not in LABEL_FIELDS and label != "type"]
        if unknown:
            raise ValueError(f"unknown label {unknown[0]!r}; labels are record fields: {', '.join(sorted(LABEL_FIELDS))}")
        if len(set(v)) != len(v):
            raise ValueError("a label is listed twice")
        return v

    @field_validator("buckets")
    @classmethod
    def _buckets(cls, v: list[float]) -> list[float]:
        if any(b >= a for a, b in zip(v[1:], v, strict=False)):
            raise ValueError("buckets must be strictly increasing, e.g. [10, 50, 100, 500]")
        return v

    @model_validator(mode="after")
    def _shape(self) -> CustomMetric:
        if self.metric_type == "counter":
            if "type" in self.labels:
                raise ValueError("the 'type' label belongs to histograms (it is the latency type); remove it from this counter")
            if self.buckets:
                raise ValueError("buckets apply to histograms only; remove them or set metric_type: histogram")
        return self

    @property
    def key_chars(self) -> int:
        return self.obfuscate_api_keys_length or 4

    @property
    def bounds(self) -> tuple[float, ...]:
        return tuple(self.buckets) or TYK_BUCKETS

    @property
    def label_names(self) -> tuple[str, ...]:
        """Tyk puts ``type`` first on every histogram, wherever it was listed."""
        if self.metric_type == "histogram":
            return ("type", *(label for label in self.labels if label != "type"))
        return tuple(self.labels)


class Meta(SinkMeta):
    # --- Tyk's keys -------------------------------------------------------------------------------
    listen_address: str = Field(description="host:port the metrics are served on, e.g. :9090 or 127.0.0.1:9090")
    path: str = Field("/metrics", description="path of the exposition; empty = /metrics")
    aggregate_observations: bool = Field(False, description="one histogram observation (the mean) per label set per batch")
    disabled_metrics: list[str] = Field(default_factory=list, description="built-in families not to expose")
    track_all_paths: bool = Field(False, description="label every path; otherwise untracked endpoints are 'unknown'")
    custom_metrics: list[CustomMetric] = Field(default_factory=list)
    # --- ours -------------------------------------------------------------------------------------
    max_series_per_metric: int = Field(
        DEFAULT_MAX_SERIES, ge=1, le=10_000_000, description="label sets kept per family; the rest are dropped and counted"
    )
    template_paths: bool = Field(False, description="collapse ids and UUIDs in the path label: /users/{id}")

    @field_validator("listen_address")
    @classmethod
    def _address(cls, v: str) -> str:
        v = v.strip()
        host, sep, port = v.rpartition(":")
        if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"{v!r}: expected host:port with a port from 1 to 65535, e.g. :9090 or 127.0.0.1:9090")
        check_host(host.strip("[]"), "host:port, e.g. 127.0.0.1:9090 (an IP address or a host name)")
        return v

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        v = v.strip() or "/metrics"
        if not v.startswith("/") or "?" in v or " " in v:
            raise ValueError(f"{v!r}: expected a URL path such as /metrics")
        return v

    @model_validator(mode="after")
    def _names(self) -> Meta:
        custom = [m.name for m in self.custom_metrics]
        for name in self.disabled_metrics:
            if name not in BUILTIN_NAMES:
                hint = "; to drop a custom metric remove it from custom_metrics" if name in custom else ""
                raise ValueError(f"disabled_metrics: {name!r} is not a built-in family ({', '.join(BUILTIN_NAMES)}){hint}")
        taken = {n for n in BUILTIN_NAMES if n not in self.disabled_metrics}
        for name in custom:
            if name in taken:
                what = "another custom metric"
                if name in BUILTIN_NAMES:
                    what = "a built-in family (disable it in disabled_metrics to replace it)"
                raise ValueError(f"custom_metrics: {name!r} is already the name of {what}")
            taken.add(name)
        return self

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen_address.rpartition(":")
        return host.strip("[]") or "0.0.0.0", int(port)
