"""``TYK_PMP_…`` environment overrides (tyk-pump.md §5.2): ``TYK_PMP_`` + the Go field names
upper-cased without underscores, nested with ``_`` (``TYK_PMP_ANALYTICSSTORAGECONFIG_HOST``); pumps
are ``TYK_PMP_PUMPS_<NAME>_<FIELD>`` and ``…_META_<FIELD>``. Go names mostly equal the JSON key
without underscores; the exceptions are listed in :data:`GO_NAMES`."""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from pump import sinks
from pump.config.model import Config, PumpConfig

ENV_PREFIX = "TYK_PMP_"
PUMPS_ENV_PREFIX = "TYK_PMP_PUMPS_"

#: JSON key → Go field name where the two differ by more than underscores and case.
GO_NAMES: dict[str, str] = {
    "optimisation_max_idle": "MAXIDLE",
    "optimisation_max_active": "MAXACTIVE",
    "enable_http_profiler": "HTTPPROFILE",
    "raw_request_decoded": "DECODERAWREQUEST",
    "raw_response_decoded": "DECODERAWRESPONSE",
    "org_ids": "ORGSIDS",
    "skip_org_ids": "SKIPPEDORGSIDS",
    "skip_api_ids": "SKIPPEDAPIIDS",
    "skip_response_codes": "SKIPPEDRESPONSECODES",
    "listen_address": "ADDR",
    "use_sniffing": "ENABLESNIFFING",
    "extended_stats": "EXTENDEDSTATISTICS",
    "auth_basic_username": "USERNAME",
    "auth_basic_password": "PASSWORD",
    "sasl_username": "USERNAME",  # Kafka's KafkaConf.Username
    "sasl_password": "PASSWORD",
    "sasl_algorithm": "ALGORITHM",
    "async_uds_write_timeout_seconds": "ASYNCUDSWRITETIMEOUT",  # DogStatsdConf.AsyncUDSWriteTimeout
}


def norm(name: str) -> str:
    """A key as Tyk's envconfig spells it: Go name, upper case, no underscores."""
    return GO_NAMES.get(name, name.replace("_", "").replace("-", "").upper())


def unwrap(annotation: Any) -> Any:
    """``X | None`` → ``X``."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def model_of(annotation: Any) -> type[BaseModel] | None:
    ann = unwrap(annotation)
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def env_value(raw: str, annotation: Any) -> Any:
    """Convert an environment string the way Tyk's envconfig does: lists comma-separated, maps
    ``k:v,k:v``, and (our addition) JSON for anything that starts with ``[`` or ``{``."""
    ann = unwrap(annotation)
    stripped = raw.strip()
    if stripped[:1] in "[{":
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            pass
    origin = typing.get_origin(ann)
    if origin is list:
        return [item.strip() for item in raw.split(",") if item.strip()]
    if origin is dict:
        pairs = (item.split(":", 1) for item in raw.split(",") if ":" in item)
        return {k.strip(): v.strip() for k, v in pairs}
    return raw  # pydantic converts "10", "true", "2.5" in lax mode


def _set_path(model: type[BaseModel], target: dict[str, Any], rest: str, raw: str) -> bool:
    """Apply one env var (``rest`` = its name below ``model``) to ``target``; False if no field matches.

    The longest matching field name wins, so ``ANALYTICSSTORAGECONFIG_HOST`` is not mistaken for
    a shorter field name that happens to be its prefix.
    """
    for name, field in sorted(model.model_fields.items(), key=lambda kv: -len(norm(kv[0]))):
        key = norm(name)
        if rest == key:
            target[name] = env_value(raw, field.annotation)
            return True
        if rest.startswith(key + "_"):
            sub = model_of(field.annotation)
            if sub is not None:
                node = target.get(name)
                if not isinstance(node, dict):
                    node = {}
                    target[name] = node
                return _set_path(sub, node, rest[len(key) + 1 :], raw)
    return False


def apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> list[str]:
    """Apply every ``TYK_PMP_…`` override except pumps; return the names that matched nothing."""
    unknown = []
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name.startswith(PUMPS_ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :]
        if rest == "OMITCONFIGFILE":
            continue
        for legacy in ("REDIS_", "TEMPORAL_STORAGE_"):  # storage handler's own prefixes (§5.2)
            if rest.startswith(legacy):
                rest = "ANALYTICSSTORAGECONFIG_" + rest[len(legacy) :]
        if not _set_path(Config, data, rest, environ[name]):
            unknown.append(name)
    return unknown


def apply_pump_env(data: dict[str, Any], environ: Mapping[str, str]) -> None:
    """Create or override pumps from ``TYK_PMP_PUMPS_<NAME>_…`` (pump names cannot hold ``_``)."""
    pumps = data.setdefault("pumps", {})
    if not isinstance(pumps, dict):
        return
    by_upper = {str(k).upper(): k for k in pumps}
    names = sorted({n[len(PUMPS_ENV_PREFIX) :].split("_", 1)[0] for n in environ if n.startswith(PUMPS_ENV_PREFIX)})
    for upper in names:
        if not upper:
            continue
        prefix = f"{PUMPS_ENV_PREFIX}{upper}_"
        key = by_upper.get(upper, upper.lower())
        entry = pumps.setdefault(key, {})
        if not isinstance(entry, dict):
            continue
        if f"{prefix}TYPE" in environ:
            entry["type"] = environ[f"{prefix}TYPE"].lower()
        elif not entry.get("type") and sinks.canonical_type(upper.lower()) in sinks.SINKS:
            entry["type"] = upper.lower()
        for env_name in sorted(environ):
            if not env_name.startswith(prefix) or env_name == f"{prefix}TYPE":
                continue
            rest = env_name[len(prefix) :]
            if rest.startswith("META_"):
                continue  # applied below, once the sink type (and so its meta model) is known
            _set_path(PumpConfig, entry, rest, environ[env_name])
        meta = entry.get("meta")
        if not isinstance(meta, dict):
            meta = entry["meta"] = {}
        meta_prefix = str(meta.get("meta_env_prefix") or f"{prefix}META")
        model = _meta_model(entry.get("type") or key)
        if model is None:
            continue
        for env_name in sorted(environ):
            if env_name.startswith(meta_prefix + "_"):
                _set_path(model, meta, env_name[len(meta_prefix) + 1 :], environ[env_name])


def _meta_model(type_name: str) -> type[BaseModel] | None:
    canonical = sinks.canonical_type(type_name)
    try:
        return sinks.meta_model(canonical) if canonical in sinks.SINKS else None
    except ImportError:
        return None  # reported by validate() with the install hint
