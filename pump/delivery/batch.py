"""The one object the delivery layer passes around: a claimed batch, decoded.

A batch travels one way — the fan-out creates it (``fanout.Intake``), hands it to each pump's
worker, and the acknowledger (``ack.py``) deletes it from Redis when no pump owes it anything.
A pump writes its share as a :class:`~pump.sinks.base.SinkBatch`, the sink's own view; those are
the two wrappers of a claim, and the only ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pump.source.redis_list import Claim, SourceKey


@dataclass(eq=False)
class Batch:
    """A claimed batch after decoding: the records, their payloads, the pumps that still owe it,
    and each queued pump's share (its view of the records: filters, field rules), kept here from
    the moment the pump takes it until it is done with it."""

    claim: Claim
    records: list[Any]
    raws: list[bytes]
    pending: set[str]
    #: True while the batch holds one of the acknowledger's in-flight slots (gateway claims do,
    #: claims from a pump's own backlog do not)
    holds_slot: bool = False
    shares: dict[str, Sequence[Any]] = field(default_factory=dict, repr=False)
    _raw_by_id: dict[str, bytes] | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return f"Batch({self.id!r}, {self.key.name!r}, {len(self.records)} records, pending={sorted(self.pending)})"

    @property
    def id(self) -> str:
        return self.claim.batch_id

    @property
    def key(self) -> SourceKey:
        return self.claim.key

    def raw_of(self, record_id: str) -> bytes:
        """The original payload of a record (for dead-letter entries)."""
        if self._raw_by_id is None:
            self._raw_by_id = {r.record_id: raw for r, raw in zip(self.records, self.raws, strict=True)}
        return self._raw_by_id.get(record_id, b"")
