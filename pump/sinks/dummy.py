"""``dummy``: counts what it is given and logs the count, like Tyk's dummy pump. Handy to measure
the pipeline without a destination."""

from __future__ import annotations

import logging

from pump.sinks.base import SinkBatch, SinkContext, SinkMeta, SinkSpec

log = logging.getLogger(__name__)


class Meta(SinkMeta):
    pass


class DummySink:
    def __init__(self, name: str) -> None:
        self.name = name
        self.written = 0

    async def start(self) -> None:
        return None

    async def write(self, batch: SinkBatch) -> None:
        self.written += len(batch.records)
        log.debug("Dummy pump received records.", extra={"pump": self.name, "records": len(batch.records)})

    async def close(self) -> None:
        return None

    async def check(self) -> None:
        return None


def build(ctx: SinkContext, meta: Meta) -> DummySink:
    return DummySink(ctx.name)


SPEC = SinkSpec(meta=Meta, build=build)
