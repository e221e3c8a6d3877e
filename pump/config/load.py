"""Load the pump file: read it (:mod:`pump.config.read`), apply ``TYK_PMP_…`` environment
overrides (:mod:`pump.config.env`), validate, and explain failures (:mod:`pump.config.messages`).

Validation collects every problem before failing — the top level, then each pump's ``meta``
against its sink's model — and each message names the key path and what is expected.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pump import sinks
from pump.config.compat import top_level_warnings, tyk_key_warnings
from pump.config.env import apply_env, apply_pump_env
from pump.config.messages import capped, format_errors
from pump.config.model import Config, PumpConfig
from pump.config.read import read_file
from pump.config.storage import check_storage
from pump.errors import ConfigError
from pump.record import JSON_GROUPS

log = logging.getLogger(__name__)

#: Tyk keys accepted here but without effect, and why (logged once at start).
NO_EFFECT: dict[str, str] = {
    "statsd_connection_string": "StatsD self-instrumentation is replaced by Prometheus metrics on /metrics",
    "statsd_prefix": "StatsD self-instrumentation is replaced by Prometheus metrics on /metrics",
    "enable_http_profiler": "the Go pprof profiler has no Python equivalent",
    "raw_request_decoded": "deprecated at top level in Tyk too; set it per pump",
    "raw_response_decoded": "deprecated at top level in Tyk too; set it per pump",
    "kv": "kv:// secret references are not supported; use environment variables",
    "storage_expiration_time": "no TTL is set on the gateway lists: a TTL loses the backlog when pumps are down",
}

# --- validation ---------------------------------------------------------------------------------


def validate(data: dict[str, Any]) -> tuple[Config, list[str]]:
    """Validate a raw config dict; return it with the sink metas checked, and warnings to log.

    Raises :class:`ConfigError` listing every problem found.
    """
    errors: list[str] = []
    config: Config | None = None
    config_error: ValidationError | None = None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        config_error = exc
    warnings = [
        f"{key}: accepted for Tyk compatibility but has no effect here ({why})"
        for key, why in NO_EFFECT.items()
        if data.get(key) not in (None, "", False, 0, {})
    ]
    warnings.extend(top_level_warnings(data))
    raw_pumps: dict[str, Any] = data.get("pumps") if isinstance(data.get("pumps"), dict) else {}  # type: ignore[assignment]
    for reserved, why in (("uptime", "uptime_pump_config"), ("undecodable", "the dead-letter list of bad payloads")):
        if reserved in raw_pumps:
            errors.append(f"pumps.{reserved}: the name {reserved!r} is reserved for {why}; rename this pump")
    if config is not None and not config.pumps:
        errors.append("pumps: no pump is configured; add at least one, e.g. pumps: {csv: {type: csv, meta: {csv_dir: ./csv}}}")
    for name, raw in raw_pumps.items():
        if isinstance(raw, dict):
            _validate_pump(name, raw, config, errors, warnings)
            if config is not None and name in config.pumps:
                errors.extend(_check_view(name, config.pumps[name]))
    if config is not None:
        _check_uptime(config, errors, warnings)
        storage_errors, storage_warnings = check_storage(config)
        errors.extend(storage_errors)
        warnings.extend(storage_warnings)
    if config_error is not None:  # formatted last, once the pumps' sink modules are loaded, listed first
        errors[:0] = format_errors(config_error, model=Config)
    if errors:
        raise ConfigError(capped(errors))
    assert config is not None
    return config, warnings


def _validate_pump(name: str, raw: dict[str, Any], config: Config | None, errors: list[str], warnings: list[str]) -> None:
    """Check one pump's type and ``meta`` against its sink, and store the validated meta."""
    type_name = str(raw.get("type") or raw.get("name") or name)
    canonical = sinks.canonical_type(type_name)
    supported = ", ".join(sorted(sinks.SINKS))
    if canonical not in sinks.SINKS:
        if canonical in sinks.TYK_TYPES:
            errors.append(
                f"pumps.{name}.type: {type_name!r} is a Tyk Pump type that this pump does not implement; supported types: {supported}"
            )
        else:
            errors.append(f"pumps.{name}.type: unknown pump type {type_name!r}; expected one of: {supported}")
        return
    if not isinstance(raw.get("meta") or {}, dict):
        return  # reported with the rest of the file's structure
    try:
        model = sinks.meta_model(canonical)
        meta = model.model_validate(raw.get("meta") or {})
    except ImportError as exc:
        errors.append(f"pumps.{name}.type: {exc}")
        return
    except ValidationError as exc:
        errors.extend(format_errors(exc, prefix=f"pumps.{name}.meta.", model=model))
        return
    if config is None:
        return
    warnings.extend(f"pumps.{name}.meta.{w}" for w in meta.compat_warnings())
    warnings.extend(f"pumps.{name}.meta.{w}" for w in tyk_key_warnings(canonical, meta))
    entry = config.pumps[name]
    entry.type = canonical
    entry.set_meta(meta)
    if (entry.raw_request_decoded or entry.raw_response_decoded) and canonical in _NO_DECODE_TYPES:
        errors.append(
            f"pumps.{name}.raw_request_decoded: not allowed for {canonical} pumps (Tyk refuses it too); they store the base64 payload"
        )
    if entry.extra_dimensions and canonical not in _AGGREGATE_TYPES:
        errors.append(
            f"pumps.{name}.extra_dimensions: only aggregate pumps ({', '.join(sorted(_AGGREGATE_TYPES))}) have dimensions; remove it"
        )
    for field in entry.ignore_fields:
        if field not in JSON_GROUPS:
            warnings.append(f"pumps.{name}.ignore_fields: {field!r} is not a field of the record; ignored")


def _check_view(name: str, pump: PumpConfig) -> list[str]:
    """Problems of the pump's ``conditions`` and ``mask`` (compiled as they will run)."""
    from pump.transforms.conditions import check_conditions
    from pump.transforms.masking import check_mask

    return [*check_conditions(pump.conditions, f"pumps.{name}.conditions"), *check_mask(pump.mask, f"pumps.{name}.mask")]


_AGGREGATE_TYPES = {"sql_aggregate", "mongo-pump-aggregate"}
_NO_DECODE_TYPES = {"mongo", "mongo-pump-selective", "mongo-pump-aggregate", "sql", "sql_aggregate"}


def _check_uptime(config: Config, errors: list[str], warnings: list[str]) -> None:
    up = config.uptime_pump_config
    if config.dont_purge_uptime_data or up is None:
        return
    if (up.uptime_type or "mongo") == "mongo" and not up.mongo_url:
        warnings.append(
            "uptime_pump_config.mongo_url: empty, so uptime data is left in Redis (set dont_purge_uptime_data: true to silence)"
        )
    if up.uptime_type == "sql":
        try:
            sinks.check_uptime(up.uptime_type, config)
        except ValidationError as exc:
            errors.extend(format_errors(exc, prefix="uptime_pump_config."))
        except ImportError as exc:
            errors.append(f"uptime_pump_config.uptime_type: {exc}")


def load(path: Path | str | None, environ: Mapping[str, str] | None = None) -> tuple[Config, list[str]]:
    """Load, override from the environment, and validate. Returns (config, warnings)."""
    env = os.environ if environ is None else environ
    omit = env.get("TYK_PMP_OMITCONFIGFILE", "").lower() == "true"
    data: dict[str, Any] = {} if omit or path is None else read_file(Path(path))
    unknown = apply_env(data, env)
    apply_pump_env(data, env)
    config, warnings = validate(data)
    warnings.extend(f"{name}: environment variable matches no setting; ignored" for name in unknown)
    return config, warnings
