"""The Redis keys of one source list: the list itself and the pump's helper keys beside it.

Every helper key of a list hashes to the list's Redis Cluster slot (:func:`hash_tag`), because the
claim/acknowledge scripts (``pump.source.scripts``) touch the list and its helpers in one call,
which a cluster allows only within one slot.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from redis.crc import key_slot

#: Gateway list names under the key prefix, in the order Tyk polls them (tyk-pump.md §1.1).
BASE_LIST = "tyk-system-analytics"
UPTIME_LIST = "host-checker:tyk-uptime-analytics"


def gateway_lists(prefix: str) -> list[tuple[str, str]]:
    """The 22 analytics lists as (key, wire format), in Tyk's polling order."""
    out: list[tuple[str, str]] = []
    for suffix in ["", *(f"_{i}" for i in range(10))]:
        out.append((f"{prefix}{BASE_LIST}{suffix}", "msgpack"))
        out.append((f"{prefix}{BASE_LIST}{suffix}_protobuf", "protobuf"))
    return out


def hash_tag(key: str) -> str:
    """A prefix that puts our helper keys in ``key``'s Redis Cluster slot (CLUSTER KEYSLOT rules).

    Redis hashes only what lies between the first ``{`` and the first ``}`` after it, if that is
    not empty; else the whole key. So a key with such a tag is repeated verbatim (our keys then
    carry the same tag), and a key without braces is wrapped in them (``{key}`` hashes ``key``).
    A key that hashes whole but holds a ``}`` cannot be wrapped; it is preceded by a short tag of
    its own that lands in the same slot."""
    if _own_tag(key) is not None:
        return key
    if "}" not in key:
        return "{" + key + "}"
    return "{" + _tag_for_slot(key_slot(key.encode())) + "}" + key  # the key itself keeps it unique


def _own_tag(key: str) -> str | None:
    """The hash tag Redis uses for ``key``, or None when it hashes the whole key."""
    start = key.find("{")
    end = key.find("}", start + 1) if start >= 0 else -1
    return key[start + 1 : end] if end > start + 1 else None


@functools.cache
def _tag_for_slot(slot: int) -> str:
    """The first of ``pump-0``, ``pump-1``, … that hashes to ``slot`` (a few thousand tries at most)."""
    i = 0
    while key_slot(f"pump-{i}".encode()) != slot:
        i += 1
    return f"pump-{i}"


@dataclass(frozen=True, slots=True)
class SourceKey:
    """One list the pump drains. ``targets`` is None for "every analytics pump"."""

    name: str
    wire: str
    namespace: str
    targets: frozenset[str] | None = None

    @property
    def tag(self) -> str:
        return f"{hash_tag(self.name)}:{self.namespace}"

    @property
    def leases(self) -> str:
        return f"{self.tag}:leases"

    @property
    def marks(self) -> str:
        return f"{self.tag}:marks"

    @property
    def batches(self) -> str:
        return f"{self.tag}:batches"

    def proc(self, token: str) -> str:
        return f"{self.tag}:p:{token}"

    def done(self, batch_id: str) -> str:
        return f"{self.tag}:d:{batch_id}"


def backlog_key(namespace: str, pump: str) -> SourceKey:
    """A pump's own durable backlog: its share of batches it could not take in time."""
    return SourceKey(f"{namespace}:backlog:{pump}", "msgpack", namespace, frozenset({pump}))


__all__ = ["BASE_LIST", "UPTIME_LIST", "SourceKey", "backlog_key", "gateway_lists", "hash_tag"]
