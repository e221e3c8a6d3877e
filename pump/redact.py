"""The one place that keeps secrets out of everything the pump prints.

Three mechanisms, all here, so no sink or command grows its own regex:

* **Secret fields.** A config field that holds a secret is typed :data:`Secret` (a password, an
  API key: the whole value is secret) or :data:`SecretDsn` (a connection string or URL: only the
  password inside it is). Both are pydantic ``SecretStr``: ``repr``, ``str`` and ``model_dump``
  show ``**********``, and the code that hands the value to a driver calls
  ``.get_secret_value()`` right there. Validating such a field also *remembers* the secret.
  A URL kept in clear because it names servers (``elasticsearch_url``) is :data:`UrlStr`: its
  userinfo password is remembered the same way.
* **Scrubbing text** (:func:`scrub`): from any text — a driver's error, a log line, the ``/ready``
  body, a dead-letter reason — remove URL userinfo passwords (``scheme://user:…@``), libpq
  ``password=…`` keywords, and every secret remembered so far, with its percent-decoded form and
  the pieces a parser may cut it into. That last part catches what no pattern can: a DSN the
  driver could not parse and echoed in pieces (``invalid percent-encoded token: "pa%zz…"``).
* **Previews of config values** for error messages (:func:`preview`): bounded work and length
  whatever the value (a YAML alias bomb expands to billions of items), values of keys that are
  secret fields (:data:`SECRET_KEYS`, collected from the models' ``SecretStr`` fields) masked,
  and the result scrubbed.

Remembered secrets shorter than :data:`MIN_SECRET` characters are not searched for in free text:
such a value (``pump``, ``admin``) is also a word, and replacing it everywhere would mangle every
log line. Patterns still remove them where they stand as credentials (URL userinfo, ``password=``).
"""

from __future__ import annotations

import re
import threading
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Annotated, Any
from urllib.parse import unquote

from pydantic import AfterValidator, BaseModel, SecretStr

REDACTED = "<redacted>"
#: Secrets shorter than this are not searched for in free text (see the module docstring).
MIN_SECRET = 6
#: Pieces of a secret (cut at ``@``, spaces, ``%``) shorter than this are not searched for either.
MIN_PIECE = 6
#: How many secret strings are remembered at most (a process loads one config; tests load many).
MAX_REMEMBERED = 2048

# ``scheme://user:password@`` — the password runs to the last ``@`` before the path or query.
_URL_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^\s:@/?#]*):([^\s/?#]*)@")
# libpq keywords and URL query parameters: ``password=x``, ``password = 'a b'``, ``sslpassword=x``.
_KW_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s&'\"]+)", re.I)
# Keys whose values are masked in previews even without a model saying so (untyped dicts).
_SECRET_KEY = re.compile(r"pass(word|wd)?$|secret|token|api_?key$|credential|private_key", re.I)

#: Names of every ``SecretStr`` field of the config and sink models (see :func:`note_secret_fields`).
SECRET_KEYS: set[str] = set()

_lock = threading.Lock()
_remembered: dict[str, None] = {}
_pattern: re.Pattern[str] | None = None


# --------------------------------------------------------------------------- remembering


def remember(*secrets: str) -> None:
    """Add secret values (and the forms a driver may print them in) to what :func:`scrub` removes."""
    global _pattern
    with _lock:
        for secret in secrets:
            for form, minimum in _forms(secret):
                if len(form) >= minimum and form not in _remembered:
                    _remembered[form] = None
                    _pattern = None
        while len(_remembered) > MAX_REMEMBERED:
            del _remembered[next(iter(_remembered))]


def forget_all() -> None:
    """Forget every remembered secret (for tests)."""
    global _pattern
    with _lock:
        _remembered.clear()
        _pattern = None


def _forms(secret: str) -> Iterable[tuple[str, int]]:
    """The secret, stripped, percent-decoded, and cut where URL and DSN parsers cut (``@``,
    whitespace, ``%``): a parser that splits a password at its ``@`` prints the rest as a host.
    Each with the length below which it is not worth searching for."""
    for text in {secret, secret.strip(), unquote(secret)}:
        yield text, MIN_SECRET
        for piece in re.split(r"[@\s%]+", text):
            if piece != text:
                yield piece, MIN_PIECE


def dsn_passwords(dsn: str) -> list[str]:
    """The passwords inside a connection string, however malformed: URL userinfo (up to the
    last ``@`` before the query, spaces and all) and ``password=`` keywords."""
    found: list[str] = []
    for start in (m.end() for m in re.finditer(r"://", dsn)):
        rest = dsn[start:]
        end = len(rest)
        for stop in ("?", "#"):
            if stop in rest:
                end = min(end, rest.index(stop))
        at = rest.rfind("@", 0, end)
        if at > 0 and ":" in rest[:at]:
            found.append(rest[:at].split(":", 1)[1])
    for m in _KW_PASSWORD.finditer(dsn):
        value = m.group(2)
        if value.startswith("'"):  # quoted, possibly unterminated: libpq unescapes \' and \\
            value = re.sub(r"\\(.)", r"\1", value[1:].removesuffix("'"))
        found.append(value)
    return found


def _remember_secret(value: SecretStr) -> SecretStr:
    remember(value.get_secret_value())
    return value


def _remember_dsn(value: SecretStr) -> SecretStr:
    remember(*dsn_passwords(value.get_secret_value()))
    return value


def _remember_url(value: str) -> str:
    remember(*dsn_passwords(value))
    return value


#: A secret value: a password, an API key, a token.
Secret = Annotated[SecretStr, AfterValidator(_remember_secret)]
#: A connection string or URL with credentials inside: the password in it is the secret.
SecretDsn = Annotated[SecretStr, AfterValidator(_remember_dsn)]
#: A URL kept in clear (it names servers); a password in its userinfo is remembered as a secret.
UrlStr = Annotated[str, AfterValidator(_remember_url)]


def note_secret_fields(model: type[BaseModel]) -> None:
    """Record the names of ``model``'s ``SecretStr`` fields in :data:`SECRET_KEYS`; the config
    and sink base models call it for every subclass, so previews mask those keys anywhere."""
    for name, field in model.model_fields.items():
        if _is_secret(field.annotation):
            SECRET_KEYS.add(name)
            if field.alias:
                SECRET_KEYS.add(field.alias)


def _is_secret(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _is_secret(typing.get_args(annotation)[0])
    if isinstance(annotation, types.UnionType) or origin is typing.Union:
        return any(_is_secret(a) for a in typing.get_args(annotation))
    return isinstance(annotation, type) and issubclass(annotation, SecretStr)


# --------------------------------------------------------------------------- scrubbing


def redact_url(url: str) -> str:
    """A URL (or a comma-separated list of them) without the passwords of its userinfo."""
    return _URL_USERINFO.sub(rf"\1:{REDACTED}@", url)


def scrub(text: str, *secrets: str) -> str:
    """``text`` without anything secret: URL passwords, ``password=`` values, every remembered
    secret and the extra ``secrets`` given. Safe on any text, cheap enough for every log line."""
    if not text:
        return text
    out = _KW_PASSWORD.sub(rf"\1{REDACTED}", redact_url(text))
    pattern = _compiled()
    if pattern is not None:
        out = pattern.sub(REDACTED, out)
    for secret in secrets:
        if secret and len(secret) >= 3:
            out = out.replace(secret, REDACTED)
    return out


def scrub_value(value: Any) -> Any:
    """:func:`scrub` applied to every string inside ``value`` (dicts, lists, tuples)."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, Mapping):
        return {k: scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_value(v) for v in value]
    return value


def _compiled() -> re.Pattern[str] | None:
    global _pattern
    pattern = _pattern
    if pattern is None and _remembered:
        with _lock:
            ordered = sorted(_remembered, key=len, reverse=True)  # longest first: no half-replaced secret
            pattern = _pattern = re.compile("|".join(re.escape(s) for s in ordered))
    return pattern


# --------------------------------------------------------------------------- previews

#: Containers deeper than this, items beyond this many, strings longer than this are elided.
_PREVIEW_DEPTH = 3
_PREVIEW_ITEMS = 6
_PREVIEW_STRING = 200


def is_secret_key(key: object) -> bool:
    """True for the name of a secret field, or a key that plainly holds one (``password``)."""
    text = str(key)
    return text in SECRET_KEYS or bool(_SECRET_KEY.search(text))


def preview(value: Any, key: str = "", limit: int = 100) -> str:
    """A short rendering of a config value for an error message: never a secret, and bounded
    work whatever the value holds (only the first few items of the first levels are visited).

    ``key`` is the name the value was given under: the value of a secret field is not shown at
    all (an empty one is, so "required" errors still read naturally)."""
    if key and is_secret_key(key):
        empty = value == "" or (isinstance(value, SecretStr) and not value.get_secret_value())
        return "''" if empty else REDACTED
    parts: list[str] = []
    _render(value, 0, parts)
    text = scrub("".join(parts))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _render(value: Any, depth: int, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(repr(value[:_PREVIEW_STRING] + ("..." if len(value) > _PREVIEW_STRING else "")))
    elif isinstance(value, SecretStr):
        out.append(REDACTED)
    elif isinstance(value, Mapping):
        _render_items(value.items(), "{}", depth, out)
    elif isinstance(value, list | tuple | set | frozenset):
        _render_items(((None, item) for item in value), "[]", depth, out)
    elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        out.append(f"<a {value.bit_length()}-bit integer>")  # repr() of a huge int is slow, or refused
    elif value is None or isinstance(value, bool | int | float):
        out.append(repr(value))
    else:
        out.append(f"<{type(value).__name__}>")


def _render_items(items: Iterable[tuple[Any, Any]], brackets: str, depth: int, out: list[str]) -> None:
    """The first items of a container (``key`` None for a sequence), a secret key's value masked."""
    if depth >= _PREVIEW_DEPTH:
        out.append(f"{brackets[0]}...{brackets[1]}")
        return
    out.append(brackets[0])
    for i, (key, item) in enumerate(items):
        if i == _PREVIEW_ITEMS:
            out.append(", ...")
            break
        out.append(", " if i else "")
        if key is not None:
            _render(key, depth + 1, out)
            out.append(": ")
        if key is not None and is_secret_key(key) and item not in ("", None):
            out.append(REDACTED)
        else:
            _render(item, depth + 1, out)
    out.append(brackets[1])
