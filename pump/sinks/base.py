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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from pump.config.model import StrictModel

if TYPE_CHECKING:
    from pump.config.model import Config, PumpConfig


class SinkMeta(StrictModel):
    """Base of every sink's ``meta`` block, with the rules of the whole pump file
    (:class:`~pump.config.model.StrictModel`): unknown keys are errors, numbers are finite, a Tyk
    ``null`` means the default. A secret setting is typed ``pump.redact.Secret`` (or
    ``SecretDsn`` for a connection string), never a plain ``str``."""

    meta_env_prefix: str = ""

    def compat_warnings(self) -> list[str]:
        """``"<key>: <what changes>"`` for each Tyk key that was set but cannot be honoured the
        way Tyk honours it; ``pump validate`` and start-up print them (prefixed ``pumps.<name>.meta.``)."""
        return []


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


M = TypeVar("M", bound=SinkMeta)


@dataclass(frozen=True, slots=True)
class SinkSpec(Generic[M]):
    """What one pump type tells the registry (:mod:`pump.sinks`): its ``meta`` model and how to
    build the sink from a validated one.

    ``uptime`` builds the sink for ``uptime_pump_config`` when ``uptime_type`` names this type's
    family; ``uptime_meta`` validates that block at ``pump validate`` (raising pydantic's
    ``ValidationError``, which the config loader words). The type name and the pip extra of the
    driver live in the registry line instead, because they are needed before (and when) the
    family's module cannot be imported.
    """

    meta: type[M]
    build: Callable[[SinkContext, M], Sink]
    uptime: Callable[[Config], Sink] | None = None
    uptime_meta: Callable[[Config], SinkMeta] | None = None


def lineage(batch_id: str) -> list[str]:
    """The batch id's ancestors and itself, oldest first (``a.1.0`` → ``a``, ``a.1``, ``a.1.0``).

    The delivery layer names split halves ``<id>.0``/``<id>.1`` and partial retries ``<id>.rN``,
    so a sub-batch's records are a subset of each ancestor's: a sink that recorded any of these
    ids as applied already holds every record of this batch."""
    parts = batch_id.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
