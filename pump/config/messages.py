"""Validation errors as people read them: one line per problem naming the key path and what is
expected (``pumps.csv.meta.csv_dirr: unknown key (expected one of: csv_dir)``), the range of a
number out of it, a bounded preview of the value with every secret removed
(:func:`pump.redact.preview`), at most :data:`MAX_ERROR_LINES` lines."""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from pump.config.env import model_of, unwrap
from pump.redact import preview, scrub

#: Problems listed at most; the rest are counted in one last line.
MAX_ERROR_LINES = 50


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
        ann = unwrap(field.annotation)
        if typing.get_origin(ann) is dict:
            args = typing.get_args(ann)
            model = model_of(args[1]) if len(args) == 2 else None
            if parts:
                parts.pop(0)
            elif model is not None:
                return None
            continue
        model = model_of(ann)
    return model
