"""Moesif events: what one record becomes for Moesif, as Tyk's Moesif pump builds it. Pure code.

Request and response from the base64 raw request/response (URI from the request line, headers
lower-cased and masked, body masked and base64-encoded), the API key as ``session_token``, the
user from ``user_id_header``, the alias, the OAuth id or the ``Authorization`` header (Basic user or
a JWT claim), the company from ``company_id_header``, and ``metadata.tyk`` with the API name and
tags (tyk-pump.md §4 Moesif). The pump itself (settings, sink) is :mod:`pump.sinks.http.moesif`.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import orjson

from pump.gotime import rfc3339_nano
from pump.record import Record
from pump.sinks.http.encode import Encoder, go_escape, go_float
from pump.text import json_bytes

DEFAULT_ENDPOINT = "https://api.moesif.net"
BATCH_PATH = "/v1/events/batch"
MASK = "*****"


@dataclass(frozen=True)
class MoesifOptions:
    request_header_masks: tuple[str, ...] = ()
    response_header_masks: tuple[str, ...] = ()
    request_body_masks: tuple[str, ...] = ()
    response_body_masks: tuple[str, ...] = ()
    disable_capture_request_body: bool = False
    disable_capture_response_body: bool = False
    user_id_header: str = ""
    company_id_header: str = ""
    authorization_header_name: str = "authorization"
    authorization_user_id_field: str = "sub"


# --- raw HTTP messages ------------------------------------------------------------------------


def b64decode_raw(value: str) -> bytes:
    """Tyk's base64 raw request/response. A value cut short by ``max_record_size`` is decoded up
    to its last whole quantum; anything else that is not base64 raises ``ValueError``."""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        pass
    try:
        return base64.b64decode(value[: len(value) // 4 * 4], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("raw request/response is not base64 (set no raw_*_decoded on a moesif pump)") from None


def request_uri(raw: bytes, default: str) -> str:
    """The target of the request line (``GET /a?b HTTP/1.1`` → ``/a?b``), else ``default``."""
    first, sep, _ = raw.partition(b"\r\n")
    if not sep:
        return default
    words = first.decode("utf-8", "replace").split()
    return words[1] if len(words) >= 3 else default


def mask(data: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """Tyk's ``maskData``: a key named in ``keys`` gets ``*****``, at any depth of nested objects."""
    for key, value in data.items():
        if key in keys:
            data[key] = MASK
        elif isinstance(value, dict):
            mask(value, keys)
    return data


def _no_constants(name: str) -> None:
    raise ValueError(name)


def _go_numbers(value: Any) -> Any:
    """Numbers as Go's float64 round trip prints them: whole floats lose their ``.0``."""
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, dict):
        return {k: _go_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_go_numbers(v) for v in value]
    return value


def encode_body(body: bytes, keys: tuple[str, ...]) -> str:
    """Tyk's ``maskRawBody``: a JSON object body is masked and re-encoded (keys sorted, as Go
    writes a map); any other body is sent as it is. Base64 either way."""
    try:
        doc = json.loads(body, parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return base64.b64encode(body).decode()
    if doc is None:
        body = b"null"
    elif isinstance(doc, dict):
        body = go_escape(json_bytes(_go_numbers(mask(doc, keys) if keys else doc), option=orjson.OPT_SORT_KEYS))
    else:
        return base64.b64encode(body).decode()
    return base64.b64encode(body).decode()


def headers_of(head: bytes, masks: tuple[str, ...]) -> dict[str, str]:
    """Tyk's ``decodeHeaders``: the lines after the first as ``name: value``, masked by exact
    name, then names lower-cased; returned sorted (a Go map is written in key order)."""
    found: dict[str, str] = {}
    for line in head.decode("utf-8", "replace").split("\n")[1:]:
        name, sep, value = line.removesuffix("\r").partition(":")
        if sep:
            found[name] = MASK if name in masks else value.strip()
    lowered = {k.lower(): v for k, v in found.items()}
    return {k: lowered[k] for k in sorted(lowered)}


def decode_message(
    raw: bytes, header_masks: tuple[str, ...], body_masks: tuple[str, ...], no_body: bool
) -> tuple[dict[str, str], str | None]:
    head, sep, body = raw.partition(b"\r\n\r\n")
    return headers_of(head, header_masks), (encode_body(body, body_masks) if sep and not no_body else None)


# --- users ------------------------------------------------------------------------------------


def _claim(segment: str, field: str) -> str:
    """A string claim of a JWT segment (unpadded base64url JSON), or ""."""
    if "=" in segment:
        return ""
    try:
        doc = json.loads(base64.b64decode(segment + "=" * (-len(segment) % 4), altchars=b"-_", validate=True))
    except (binascii.Error, ValueError, RecursionError):
        return ""
    value = doc.get(field) if isinstance(doc, dict) else None
    return value if isinstance(value, str) else ""


def user_from_authorization(token: str, field: str) -> str:
    """Tyk's reading of an ``Authorization`` value: the Basic user, or a claim of a JWT."""
    if "Basic" in token:
        try:
            return base64.b64decode(token.split("Basic", 1)[1].strip(), validate=True).decode("utf-8", "replace").split(":")[0]
        except (binascii.Error, ValueError):
            return ""
    if "Bearer" in token:
        parts = token.split("Bearer", 1)[1].strip().split(".")
        return _claim(parts[1], field) if len(parts) >= 2 else ""
    parts = token.split(".")
    return _claim(parts[1] if len(parts) >= 2 else token, field)


def header_id(req: dict[str, str], rsp: dict[str, str], name: str) -> str:
    """A header of the request, or of the response when it has it too (Tyk's order)."""
    key = name.lower()
    return rsp[key] if key in rsp else req.get(key, "")


def user_id(r: Record, req: dict[str, str], rsp: dict[str, str], o: MoesifOptions) -> str:
    uid = header_id(req, rsp, o.user_id_header) if o.user_id_header else ""
    if uid:
        return uid
    if r.alias:
        return r.alias
    if r.oauth_id:
        return r.oauth_id
    if req:
        token = req.get((o.authorization_header_name or "authorization").lower())
        if token is not None:
            return user_from_authorization(token, (o.authorization_user_id_field or "sub").lower())
    return ""


# --- events -----------------------------------------------------------------------------------


def _utc(ns: int) -> str:
    return rfc3339_nano(ns, UTC)


def event(r: Record, o: MoesifOptions) -> dict[str, Any]:
    """The Moesif event of one record, keys in the order Go's structs write them."""
    raw_req = b64decode_raw(r.raw_request)
    raw_rsp = b64decode_raw(r.raw_response)
    req_headers, req_body = decode_message(raw_req, o.request_header_masks, o.request_body_masks, o.disable_capture_request_body)
    rsp_headers, rsp_body = decode_message(raw_rsp, o.response_header_masks, o.response_body_masks, o.disable_capture_response_body)
    return {
        "request": {
            "time": _utc(r.timestamp_ns),
            "uri": request_uri(raw_req, r.path),
            "verb": r.method,
            "headers": req_headers,
            "api_version": r.api_version,
            "ip_address": r.ip_address,
            "body": req_body,
            "transfer_encoding": "base64",
        },
        "response": {
            "time": _utc(r.timestamp_ns + r.request_time * 1_000_000),
            "status": r.response_code,
            "headers": rsp_headers,
            "body": rsp_body,
            "transfer_encoding": "base64",
        },
        "session_token": r.api_key,
        "user_id": user_id(r, req_headers, rsp_headers, o),
        "company_id": header_id(req_headers, rsp_headers, o.company_id_header) if o.company_id_header else "",
        "metadata": {"tyk": {"api_name": r.api_name, "tags": r.tags}},
        "direction": "Incoming",
        "weight": 1,
    }


def event_encoder(o: MoesifOptions) -> Encoder:
    return lambda r: go_escape(json_bytes(event(r, o)))
