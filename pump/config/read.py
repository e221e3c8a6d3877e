"""Reading the pump file: JSON when it parses as JSON (a Tyk pump.conf, often indented with tabs,
which YAML forbids), else YAML, whose aliases may not expand beyond :data:`MAX_YAML_VALUES` values
(a "billion laughs" file is refused at parse time)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from pump.errors import ConfigError

#: A YAML document whose aliases expand to more values than this is refused.
MAX_YAML_VALUES = 100_000


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
