"""``mask``: PII masked for one pump, in WSO2's formats (its Moesif analytics masking).

Formats (the seed's examples are the golden tests):

* ``IPV4`` — the third octet: ``192.168.1.98`` → ``192.168.***.98``;
* ``IPV6`` — segments 4 to 7: ``2001:0db8:85a3:0000:0000:8a2e:0370:7334`` →
  ``2001:0db8:85a3:****:****:****:****:7334`` (a compressed address is expanded first);
* ``IP`` — ``IPV4`` or ``IPV6``, whichever the value is (``ip_address`` can hold either);
* ``EMAIL`` — the local part: ``john.doe@gmail.com`` → ``*****@gmail.com``;
* ``STRING`` — the whole value: ``JohnDoe`` → ``*****`` (always five stars: the length is not kept);
* ``OBFUSCATE`` — Tyk's ``obfuscate_api_keys``: ``****`` and the last ``obfuscate_length``
  characters, ``--`` for a value no longer than that.

A value that does not fit its format (an ``IPV4`` field holding a host name, an ``EMAIL`` without
``@``) is masked whole, as ``STRING``: a mask never lets a value through because it was odd. Empty
values stay empty (there is nothing to hide, and ``exists`` still means what it did).

Headers named in ``request_headers``/``response_headers`` are masked inside the base64 HTTP
payloads ``raw_request``/``raw_response``: decode, replace each named header's value with
``*****`` (names match case-insensitively), re-encode. ``request_body``/``response_body`` mask
JSON paths inside a JSON body (``user.email``, ``items.*.card``) and fix ``Content-Length``. A body
that is not JSON (or is chunked) is left as it is.

Masking a field copies the record (copy on write): other pumps keep the shared original. Masking
``api_key`` also masks the gateway's ``key-<api key>`` tags, which would otherwise repeat the key.
Aggregate pumps aggregate the masked view, so their ``apikeys``/``oauthids`` dimensions hold the
masked values.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from pump.config.analytics import Mask
from pump.record import Record
from pump.transforms.variables import ATTRIBUTES, KINDS

STARS = "*****"
_KEY_TAG = "key-"
#: Fields whose masking is done by the header/body options, not by a format on the whole value.
_PAYLOADS = ("raw_request", "raw_response")

Masker = Callable[[Sequence[Record]], list[Record]]


class MaskError(ValueError):
    """A mask that cannot apply; the message names the key."""


# --------------------------------------------------------------------------- formats


#: Values longer than this are masked without the cache (a body field can be megabytes).
_CACHED_LEN = 256


def mask_value(fmt: str, value: str, keep: int = 4) -> str:
    """``value`` in format ``fmt`` (module docstring). Short values are cached: IPs, keys and
    users repeat."""
    if len(value) <= _CACHED_LEN:
        return _mask_cached(fmt, value, keep)
    return _mask(fmt, value, keep)


@lru_cache(maxsize=65536)
def _mask_cached(fmt: str, value: str, keep: int) -> str:
    return _mask(fmt, value, keep)


def _mask(fmt: str, value: str, keep: int) -> str:
    if not value:
        return value
    if fmt == "STRING":
        return STARS
    if fmt == "OBFUSCATE":
        return "****" + value[-keep:] if len(value) > keep else "--"
    if fmt == "EMAIL":
        local, at, domain = value.rpartition("@")
        return f"{STARS}@{domain}" if at and local and domain else STARS
    if fmt == "IP":
        fmt = "IPV6" if ":" in value else "IPV4"
    if fmt == "IPV4":
        parts = value.split(".")
        if len(parts) == 4 and all(p.isdigit() for p in parts):
            return f"{parts[0]}.{parts[1]}.***.{parts[3]}"
        return STARS
    if fmt == "IPV6":
        return _mask_ipv6(value)
    raise MaskError(f"unknown mask format {fmt!r}")


def _mask_ipv6(value: str) -> str:
    segments = value.split(":")
    if len(segments) != 8 or not all(segments):
        try:
            segments = ipaddress.IPv6Address(value.split("%", 1)[0]).exploded.split(":")
        except ValueError:
            return STARS
    return ":".join((*segments[:3], "****", "****", "****", "****", segments[7]))


# --------------------------------------------------------------------------- HTTP payloads


def mask_http(raw: str, headers: frozenset[bytes], body: dict[str, str], keep: int = 4) -> str:
    """Mask named headers and JSON body paths inside a recorded HTTP message (base64, or the
    plain text a previous step decoded). Returns ``raw`` itself when nothing changed."""
    if not raw:
        return raw
    try:
        data = base64.b64decode(raw, validate=True)
        encoded = True
    except (binascii.Error, ValueError):
        data, encoded = raw.encode("utf-8", "surrogateescape"), False
    masked = _mask_message(data, headers, body, keep)
    if masked is data:
        return raw
    return base64.b64encode(masked).decode("ascii") if encoded else masked.decode("utf-8", "surrogateescape")


def _mask_message(data: bytes, headers: frozenset[bytes], body: dict[str, str], keep: int) -> bytes:
    sep = b"\r\n\r\n"
    cut = data.find(sep)
    if cut < 0:
        sep = b"\n\n"
        cut = data.find(sep)
    head, payload = (data, b"") if cut < 0 else (data[:cut], data[cut + len(sep) :])
    eol = b"\r\n" if b"\r\n" in head else b"\n"
    lines = head.split(eol)
    changed = False
    new_payload = _mask_body(payload, body, keep) if body and payload else None
    if new_payload is not None:
        payload, changed = new_payload, True
    for i in range(1, len(lines)):
        name, colon, value = lines[i].partition(b":")
        if not colon:
            continue
        lname = name.strip().lower()
        if lname in headers and value.strip():
            lines[i] = name + b": " + STARS.encode()
            changed = True
        elif new_payload is not None and lname == b"content-length":
            lines[i] = name + b": " + str(len(payload)).encode()
    if not changed:
        return data
    return eol.join(lines) + (sep + payload if cut >= 0 else b"")


def _mask_body(payload: bytes, body: dict[str, str], keep: int) -> bytes | None:
    """The JSON body with the paths masked, or None if it is not JSON or nothing matched."""
    if payload[:1] not in (b"{", b"[") and payload.lstrip()[:1] not in (b"{", b"["):
        return None
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: absurdly deep nesting
        return None
    hits = 0
    for path, fmt in body.items():
        hits += _mask_path(doc, _split_path(path), fmt, keep)
    if not hits:
        return None
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def _split_path(path: str) -> list[str]:
    path = path.removeprefix("$").removeprefix(".")
    return [p for p in path.replace("[", ".").replace("]", "").split(".") if p]


def _mask_path(node: Any, parts: list[str], fmt: str, keep: int) -> int:
    """Mask every value at ``parts`` under ``node`` (``*`` = every key/element); the count masked."""
    if not parts:
        return 0
    head, rest = parts[0], parts[1:]
    if isinstance(node, dict):
        keys = list(node) if head == "*" else [head] if head in node else []
    elif isinstance(node, list):
        keys = list(range(len(node))) if head == "*" else [int(head)] if head.isdigit() and int(head) < len(node) else []
    else:
        return 0
    count = 0
    for k in keys:
        child = node[k]
        if rest:
            count += _mask_path(child, rest, fmt, keep)
        elif child is not None and not isinstance(child, dict | list):
            node[k] = mask_value(fmt, child if isinstance(child, str) else json.dumps(child), keep)
            count += 1
    return count


# --------------------------------------------------------------------------- compile


def check_mask(mask: Mask | None, where: str) -> list[str]:
    """Every problem of a pump's ``mask``, one line each (for ``pump validate``)."""
    try:
        compile_mask(mask, where)
    except MaskError as exc:
        return str(exc).splitlines()
    return []


def _field_masks(mask: Mask, where: str) -> list[tuple[str, str]]:
    """``(attribute, format)`` of ``mask.fields``; :class:`MaskError` naming the wrong ones."""
    problems: list[str] = []
    fields: list[tuple[str, str]] = []
    for name, fmt in mask.fields.items():
        attr = ATTRIBUTES.get(name)
        if attr is None or attr in _PAYLOADS or KINDS[name] not in ("str", "list"):
            problems.append(
                f"{where}.fields.{name}: not a text field of the record; mask a text field by its Tyk JSON name "
                f"(e.g. ip_address, api_key, alias, oauth_id), and raw_request/raw_response with request_headers/request_body"
            )
            continue
        fields.append((attr, fmt))
    for key in ("request_body", "response_body"):
        for path in getattr(mask, key):
            if not _split_path(path):
                problems.append(f"{where}.{key}: empty JSON path {path!r}")
    if problems:
        raise MaskError("\n".join(problems))
    return fields


def _payload_masks(mask: Mask) -> list[tuple[str, frozenset[bytes], dict[str, str]]]:
    """``(attribute, header names, body paths)`` for ``raw_request`` and ``raw_response``."""
    payloads: list[tuple[str, frozenset[bytes], dict[str, str]]] = []
    req_h = frozenset(h.strip().lower().encode() for h in mask.request_headers)
    resp_h = frozenset(h.strip().lower().encode() for h in mask.response_headers)
    if req_h or mask.request_body:
        payloads.append(("raw_request", req_h, dict(mask.request_body)))
    if resp_h or mask.response_body:
        payloads.append(("raw_response", resp_h, dict(mask.response_body)))
    return payloads


def _masked_field(fmt: str, value: Any, keep: int) -> Any:
    if isinstance(value, str):
        return mask_value(fmt, value, keep)
    if isinstance(value, list):
        return [mask_value(fmt, v, keep) if isinstance(v, str) else v for v in value]
    return value


def compile_mask(mask: Mask | None, where: str = "mask") -> Masker | None:
    """The batch function of a pump's ``mask``, or None when it masks nothing."""
    if mask is None or mask.is_empty():
        return None
    fields = _field_masks(mask, where)
    payloads = _payload_masks(mask)
    keep = mask.obfuscate_length
    key_fmt = dict(fields).get("api_key")

    def one(r: Record) -> Record:
        changes: dict[str, Any] = {}
        for attr, fmt in fields:
            value = getattr(r, attr)
            new = _masked_field(fmt, value, keep)
            if new != value:
                changes[attr] = new
        if key_fmt is not None and r.tags and "tags" not in changes:
            tags = [_KEY_TAG + mask_value(key_fmt, t[4:], keep) if t.startswith(_KEY_TAG) else t for t in r.tags]
            if tags != r.tags:
                changes["tags"] = tags
        for attr, headers, body in payloads:
            raw = getattr(r, attr)
            new_raw = mask_http(raw, headers, body, keep)
            if new_raw is not raw:
                changes[attr] = new_raw
        if not changes:
            return r
        copy = r.copy()
        for attr, value in changes.items():
            setattr(copy, attr, value)
        return copy

    return lambda records: [one(r) for r in records]


__all__ = ["STARS", "MaskError", "Masker", "check_mask", "compile_mask", "mask_http", "mask_value"]
