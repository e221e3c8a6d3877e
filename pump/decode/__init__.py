"""Bytes from Redis → records. One decoder per wire format; the source key says which applies."""

from __future__ import annotations

from collections.abc import Callable

from pump.decode import msgpack, protobuf, uptime
from pump.record import Record

Decoder = Callable[[bytes], object]

#: Wire format name → decoder. Gateway lists ending in ``_protobuf`` use protobuf (tyk-pump.md §1.4).
DECODERS: dict[str, Callable[[bytes], object]] = {
    "msgpack": msgpack.decode_record,
    "protobuf": protobuf.decode_record,
    "uptime": uptime.decode_uptime,
}

__all__ = ["DECODERS", "Decoder", "Record"]
