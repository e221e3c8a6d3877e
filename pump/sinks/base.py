"""The one small interface every sink implements, and what the delivery layer hands it.

A sink owns only the write. Batching, retries, timeouts, dead-lettering, acknowledgement and
metrics belong to ``pump.delivery`` (Singer's "the framework owns the loop" rule), so a sink module
is short: its ``Meta`` model, ``build()``, and a class with ``start``/``write``/``close``/``check``.

Errors a sink raises decide what happens next (see ``pump.errors``): ``RetriableError`` for
transient trouble, ``RejectedRecords`` when the server names the records it refused, and
``BatchDataError`` (or any other exception) when the batch's data was refused without saying
which record — the delivery layer then splits the batch to isolate it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pump.config.model import StrictModel

if TYPE_CHECKING:
    from pump.config.model import Config, PumpConfig


class SinkMeta(StrictModel):
    """Base of every sink's ``meta`` block, with the rules of the whole pump file
    (:class:`~pump.config.model.StrictModel`): unknown keys are errors, numbers are finite, a Tyk
    ``null`` means the default. A secret setting is typed ``pump.redact.Secret`` (or
    ``SecretDsn`` for a connection string), never a plain ``str``."""

    meta_env_prefix: str = ""


@dataclass(frozen=True, slots=True)
class SinkBatch:
    """What a sink is asked to write.

    ``id`` is stable across redeliveries of the same records to the same pump (the claimed
    batch id, plus a suffix when the delivery layer splits a batch), so a sink can keep a ledger
    of applied ids and make non-idempotent writes such as aggregate increments exactly-once.
    """

    id: str
    records: Sequence[Any]
    source: str = ""


@dataclass(slots=True)
class SinkContext:
    """What a sink may know about its surroundings when it is built."""

    name: str
    pump: PumpConfig
    config: Config
    extra: dict[str, Any] = field(default_factory=dict)


class Sink(Protocol):
    """A destination for analytics records."""

    name: str

    async def start(self) -> None:
        """Connect and prepare (schema, indexes). Raise ``RetriableError`` if the server is down:
        the delivery layer retries with backoff while the records wait in Redis."""

    async def write(self, batch: SinkBatch) -> None:
        """Write every record of the batch, or raise (see module docstring)."""

    async def close(self) -> None:
        """Flush and release connections; must be safe to call twice."""

    async def check(self) -> None:
        """A cheap connectivity check for ``pump validate --check``; raise on failure."""
