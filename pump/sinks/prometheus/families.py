"""What each exposed family counts: Tyk's five built-in families, custom ones, and label values.

A :class:`Family` is a name, a kind, its label names and one function per label that reads the
value from a record, so a batch is tallied with no lookups by name. Label values are Go's
``fmt.Sprint`` of the field Tyk reads (``code`` is the status as text, ``time_stamp`` Go's time
string), so an exposition matches Tyk's label for label.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pump.gotime import go_time_string
from pump.record import Record
from pump.transforms.paths import tracked

Getter = Callable[[Record], str]

#: Tyk's histogram buckets (milliseconds), for ``tyk_latency`` and custom histograms without ``buckets``.
TYK_BUCKETS: tuple[float, ...] = (
    1, 2, 5, 7, 10, 15, 20, 25, 30, 40, 50, 60, 70, 80, 90, 100, 200, 300, 400, 500, 1000, 2000, 5000, 10000, 30000, 60000,
)  # fmt: skip

#: The value Tyk gives the path of a request whose endpoint is not tracked.
UNKNOWN_PATH = "unknown"


def _mcp(field: str) -> Getter:
    def get(r: Record) -> str:
        return str(r.mcp_stats.get(field, "")) if r.mcp_stats else ""

    return get


#: Every label a custom metric may use → how Tyk reads it from the record (``path``, ``key`` and
#: ``api_key`` are replaced per pump: tracking and obfuscation).
LABEL_FIELDS: dict[str, Getter] = {
    "host": lambda r: r.host,
    "method": lambda r: r.method,
    "path": lambda r: r.path,
    "code": lambda r: str(r.response_code),
    "response_code": lambda r: str(r.response_code),
    "api_key": lambda r: r.api_key,
    "key": lambda r: r.api_key,
    "time_stamp": lambda r: go_time_string(r.timestamp_ns, r.tz),
    "api_version": lambda r: r.api_version,
    "api_name": lambda r: r.api_name,
    "api": lambda r: r.api_id,
    "api_id": lambda r: r.api_id,
    "org_id": lambda r: r.org_id,
    "client_id": lambda r: r.oauth_id,
    "oauth_id": lambda r: r.oauth_id,
    "request_time": lambda r: str(r.request_time),
    "latency_total": lambda r: str(r.latency_total),
    "latency_upstream": lambda r: str(r.latency_upstream),
    "latency_gateway": lambda r: str(r.latency_gateway),
    "ip_address": lambda r: r.ip_address,
    "alias": lambda r: r.alias,
    "mcp_method": _mcp("JSONRPCMethod"),
    "mcp_primitive_type": _mcp("PrimitiveType"),
    "mcp_primitive_name": _mcp("PrimitiveName"),
}

#: ``tyk_latency``'s three observations per record: (``type`` label, the field observed).
LATENCY_TYPES: tuple[tuple[str, Callable[[Record], int]], ...] = (
    ("total", lambda r: r.request_time),
    ("upstream", lambda r: r.latency_upstream),
    ("gateway", lambda r: r.latency_gateway),
)
#: A custom histogram observes the request time under ``type="total"``, as Tyk's does.
REQUEST_TIME: tuple[tuple[str, Callable[[Record], int]], ...] = (("total", lambda r: r.request_time),)


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    help: str
    kind: str  # "counter" | "histogram"
    labels: tuple[str, ...]  # as exposed; a histogram's first one is "type"
    getters: tuple[Getter, ...]  # one per label that is read from the record (all but "type")
    buckets: tuple[float, ...] = ()
    observe: tuple[tuple[str, Callable[[Record], int]], ...] = ()
    mcp_only: bool = False


@dataclass(frozen=True, slots=True)
class BuiltinSpec:
    name: str
    help: str
    kind: str
    labels: tuple[str, ...]


#: Tyk's built-in families, in Tyk's order, with Tyk's names, help texts and labels.
BUILTINS: tuple[BuiltinSpec, ...] = (
    BuiltinSpec("tyk_http_status", "HTTP status codes per API", "counter", ("code", "api")),
    BuiltinSpec("tyk_http_status_per_path", "HTTP status codes per API path and method", "counter", ("code", "api", "path", "method")),
    BuiltinSpec("tyk_http_status_per_key", "HTTP status codes per API key", "counter", ("code", "key")),
    BuiltinSpec("tyk_http_status_per_oauth_client", "HTTP status codes per oAuth client id", "counter", ("code", "client_id")),
    BuiltinSpec(
        "tyk_latency", "Latency added by Tyk, Total Latency, upstream latency, and gateway latency per API", "histogram", ("type", "api")
    ),
)
BUILTIN_NAMES: tuple[str, ...] = tuple(b.name for b in BUILTINS)


def obfuscator(keep: int) -> Getter:
    """Tyk's key obfuscation: ``****`` and the last ``keep`` characters, or ``--`` for short keys."""

    def get(r: Record) -> str:
        key = r.api_key
        return "****" + key[-keep:] if len(key) > keep else "--"

    return get


def path_getter(track_all_paths: bool, template: Callable[[str], str] | None) -> Getter:
    """The ``path`` label: Tyk's ``unknown`` for untracked endpoints, else the (templated) path."""
    if template is None:
        return lambda r: r.path if tracked(r, track_all_paths) else UNKNOWN_PATH
    return lambda r: template(r.path) if tracked(r, track_all_paths) else UNKNOWN_PATH


def getters_for(labels: tuple[str, ...], path: Getter, key: Getter | None = None) -> tuple[Getter, ...]:
    """One getter per label (``type`` excluded: it is the latency type, not a record field)."""
    out: list[Getter] = []
    for label in labels:
        if label == "type":
            continue
        if label == "path":
            out.append(path)
        elif label in ("key", "api_key") and key is not None:
            out.append(key)
        else:
            out.append(LABEL_FIELDS[label])
    return tuple(out)
