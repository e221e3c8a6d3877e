"""Read the pump file, apply ``TYK_PMP_…`` environment overrides, validate, and explain failures.

A file that parses as JSON is read as JSON (a Tyk pump.conf, often indented with tabs, which YAML
forbids); anything else as YAML, whose aliases may not expand beyond :data:`MAX_YAML_VALUES`
values (a "billion laughs" file is refused at parse time). Environment names follow Tyk
(tyk-pump.md §5.2): ``TYK_PMP_`` + the Go field names upper-cased without underscores, nested
with ``_`` (``TYK_PMP_ANALYTICSSTORAGECONFIG_HOST``); pumps are ``TYK_PMP_PUMPS_<NAME>_<FIELD>``
and ``…_META_<FIELD>``. Go names mostly equal the JSON key without underscores; the exceptions
are listed in ``GO_NAMES``.

Validation collects every problem before failing, and each message names the key path and what
is expected, e.g. ``pumps.csv.meta.csv_dirr: unknown key (expected one of: csv_dir)``, or the
range of a number. The value shown after ``got`` is a bounded preview with every secret removed
(``pump.redact.preview``), and at most :data:`MAX_ERROR_LINES` problems are listed.
"""

from __future__ import annotations

import json
import logging
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from pump import sinks
from pump.config.model import Config, PumpConfig
from pump.errors import ConfigError
from pump.redact import preview, scrub

log = logging.getLogger(__name__)

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

#: A YAML document whose aliases expand to more values than this is refused.
MAX_YAML_VALUES = 100_000
#: Problems listed at most; the rest are counted in one last line.
MAX_ERROR_LINES = 50


def norm(name: str) -> str:
    """A key as Tyk's envconfig spells it: Go name, upper case, no underscores."""
    return GO_NAMES.get(name, name.replace("_", "").replace("-", "").upper())


def read_file(path: Path) -> dict[str, Any]:
    """Parse the pump file into a dict; raise ConfigError naming the line of a syntax error."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise ConfigError([f"{path}: file not found; pass an existing pump file with --config"]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text (byte {exc.start}); save the file as UTF-8"]) from exc
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from exc
    try:
        data = parse(text, path)
    except RecursionError:
        raise ConfigError([f"{path}: nested too deeply to be a pump file"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: the top level must be a mapping of keys, got {type(data).__name__}"])
    return data


def parse(text: str, path: Path) -> Any:
    """JSON if the text is JSON, else YAML. Tyk's pump.conf files are JSON and often indented with
    tabs, which JSON allows and YAML forbids; and where the two disagree (``1e3``, ``"\\/"``) a
    JSON file means JSON. A file that looks like JSON but is not gets the JSON parser's error."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        json_error = exc
    try:
        return yaml.load(text, Loader=_BoundedLoader)  # a SafeLoader, with a bound on aliases
    except _AliasBomb as exc:
        raise ConfigError([f"{path}: {exc}"]) from None
    except yaml.YAMLError as exc:
        if text.lstrip().startswith(("{", "[")):
            where = f"line {json_error.lineno}, column {json_error.colno}"
            raise ConfigError([f"{path}: not valid JSON at {where}: {json_error.msg}"]) from None
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError([f"{path}: not valid YAML/JSON{where}: {getattr(exc, 'problem', exc)}"]) from None


class _AliasBomb(Exception):
    """YAML aliases that expand to too much, or into themselves."""


class _BoundedLoader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no type hints
    """PyYAML's safe loader, refusing documents whose aliases expand beyond :data:`MAX_YAML_VALUES`.

    Aliases make the parsed structure share nodes, so a small file can stand for billions of
    values; anything that walks it (validation, an error message) would expand it."""

    def compose_document(self) -> Any:
        node = super().compose_document()
        unique: dict[int, int] = {}
        if _expanded(node, unique, set()) > max(MAX_YAML_VALUES, len(unique)):
            raise _AliasBomb(f"YAML aliases expand to more than {MAX_YAML_VALUES} values; write the values out or use fewer aliases")
        return node


def _expanded(node: Any, sizes: dict[int, int], open_: set[int]) -> int:
    """How many values ``node`` stands for once every alias is expanded (each node counted once)."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_:
        raise _AliasBomb("a YAML alias refers to a value that contains it")
    open_.add(key)
    total = 1
    if isinstance(node, yaml.SequenceNode):
        total += sum(_expanded(child, sizes, open_) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        total += sum(_expanded(k, sizes, open_) + _expanded(v, sizes, open_) for k, v in node.value)
    open_.discard(key)
    sizes[key] = total
    return total


# --- environment overrides ----------------------------------------------------------------------


def _unwrap(annotation: Any) -> Any:
    """``X | None`` → ``X``."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def _model_of(annotation: Any) -> type[BaseModel] | None:
    ann = _unwrap(annotation)
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def env_value(raw: str, annotation: Any) -> Any:
    """Convert an environment string the way Tyk's envconfig does: lists comma-separated, maps
    ``k:v,k:v``, and (our addition) JSON for anything that starts with ``[`` or ``{``."""
    ann = _unwrap(annotation)
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
            sub = _model_of(field.annotation)
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


# --- validation ---------------------------------------------------------------------------------


def _loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc if not str(part).startswith("function-"))


def format_errors(exc: ValidationError, prefix: str = "", model: type[BaseModel] | None = None) -> list[str]:
    """One line per problem: ``path: what is wrong (got value)``, and the range of a number out of
    it. The value is a bounded, secret-free preview (:func:`pump.redact.preview`)."""
    return capped([_format_one(err, prefix, model) for err in exc.errors(include_url=False)])


def capped(lines: list[str]) -> list[str]:
    """At most :data:`MAX_ERROR_LINES` lines, the rest counted in one last line."""
    if len(lines) <= MAX_ERROR_LINES:
        return lines
    return [*lines[:MAX_ERROR_LINES], f"... and {len(lines) - MAX_ERROR_LINES} more errors"]


_RANGE_ERRORS = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal"})


def _format_one(err: Any, prefix: str, model: type[BaseModel] | None) -> str:
    loc = tuple(err["loc"])
    path = (prefix + _loc(loc)).rstrip(".")
    last = str(loc[-1]) if loc else ""
    if err["type"] == "extra_forbidden":
        parent = _parent_model(model, loc[:-1]) if model else None
        expected = f" (expected one of: {', '.join(parent.model_fields)})" if parent else ""
        return f"{path}: unknown key{expected}"
    msg = scrub(str(err["msg"]))[:300]
    if err["type"] == "literal_error":
        msg = msg.replace("Input should be", "must be")
    got = "" if err["type"] == "missing" else f" (got {preview(err.get('input'), last)})"
    bounds = _range_of(model, loc) if err["type"] in _RANGE_ERRORS else ""
    return f"{path}: {msg}{got}{bounds}"


def _range_of(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> str:
    """``; the range is 0.1 to 3600`` for a field bounded on both sides, else empty."""
    parent = _parent_model(model, loc[:-1]) if model and loc else None
    field = parent.model_fields.get(str(loc[-1])) if parent else None
    if field is None:
        return ""
    low = next((f"above {_num(c.gt)}" for c in field.metadata if getattr(c, "gt", None) is not None), None)
    low = next((_num(c.ge) for c in field.metadata if getattr(c, "ge", None) is not None), low)
    high = next((f"below {_num(c.lt)}" for c in field.metadata if getattr(c, "lt", None) is not None), None)
    high = next((_num(c.le) for c in field.metadata if getattr(c, "le", None) is not None), high)
    return f"; the range is {low} to {high}" if low is not None and high is not None else ""


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _parent_model(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model that holds the key at the end of ``loc``, to list the keys it does accept.

    A dict-of-models field (``pumps``) consumes the next path element as a key, not a field."""
    parts = list(loc)
    while parts and model is not None:
        field = model.model_fields.get(str(parts.pop(0)))
        if field is None:
            return None
        ann = _unwrap(field.annotation)
        if typing.get_origin(ann) is dict:
            args = typing.get_args(ann)
            model = _model_of(args[1]) if len(args) == 2 else None
            if parts:
                parts.pop(0)
            elif model is not None:
                return None
            continue
        model = _model_of(ann)
    return model


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
    raw_pumps: dict[str, Any] = data.get("pumps") if isinstance(data.get("pumps"), dict) else {}  # type: ignore[assignment]
    for reserved, why in (("uptime", "uptime_pump_config"), ("undecodable", "the dead-letter list of bad payloads")):
        if reserved in raw_pumps:
            errors.append(f"pumps.{reserved}: the name {reserved!r} is reserved for {why}; rename this pump")
    if config is not None and not config.pumps:
        errors.append("pumps: no pump is configured; add at least one, e.g. pumps: {csv: {type: csv, meta: {csv_dir: ./csv}}}")
    for name, raw in raw_pumps.items():
        if isinstance(raw, dict):
            _validate_pump(name, raw, config, errors, warnings)
    if config is not None:
        _check_uptime(config, errors, warnings)
    if config_error is not None:  # formatted last, once the pumps' sink modules are loaded, listed first
        errors[:0] = format_errors(config_error, model=Config)
    if errors:
        raise ConfigError(capped(errors))
    assert config is not None
    return config, warnings


def _validate_pump(name: str, raw: dict[str, Any], config: Config | None, errors: list[str], warnings: list[str]) -> None:
    """Check one pump's type and ``meta`` against its sink, and store the validated meta."""
    from pump.record import JSON_GROUPS

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
    entry = config.pumps[name]
    entry.type = canonical
    entry.set_meta(meta)
    if (entry.raw_request_decoded or entry.raw_response_decoded) and canonical in _NO_DECODE_TYPES:
        errors.append(
            f"pumps.{name}.raw_request_decoded: not allowed for {canonical} pumps (Tyk refuses it too); they store the base64 payload"
        )
    for field in entry.ignore_fields:
        if field not in JSON_GROUPS:
            warnings.append(f"pumps.{name}.ignore_fields: {field!r} is not a field of the record; ignored")


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
