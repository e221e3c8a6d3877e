"""What a raw-style SQL pump writes (:class:`RowShape`): its table family, which records it keeps
and how one record becomes a row. ``sql`` has a tuned shape (``raw.RAW_SHAPE``, its COPY line one generated f-string); the graph
and MCP pumps use :func:`plain_shape`, which derives COPY text and SQLite parameters from the
row values."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pump.record import Record
from pump.sinks.sql.schema import TableSpec
from pump.sinks.sql.values import clean, copy_field


@dataclass(frozen=True, slots=True)
class RowShape:
    spec: TableSpec
    #: The per-connection PostgreSQL staging table (one per shape: the columns differ).
    stage: str
    keep: Callable[[Record], bool]
    values: Callable[[Record], tuple[Any, ...]]
    copy_text: Callable[[Sequence[Record]], str]
    sqlite_row: Callable[[Record], tuple[Any, ...]]


def plain_shape(spec: TableSpec, stage: str, keep: Callable[[Record], bool], values: Callable[[Record], tuple[Any, ...]]) -> RowShape:
    """A shape whose COPY line and SQLite row are made field by field from ``values``."""
    text = tuple(i for i, (_, kind) in enumerate(spec.columns) if kind == "text")
    bools = tuple(i for i, (_, kind) in enumerate(spec.columns) if kind == "bool")

    def copy_text(records: Sequence[Record]) -> str:
        return "".join("\t".join(map(copy_field, values(r))) + "\n" for r in records)

    def sqlite_row(r: Record) -> tuple[Any, ...]:
        row = list(values(r))
        for i in text:
            row[i] = clean(row[i])
        for i in bools:
            row[i] = 1 if row[i] else 0
        return tuple(row)

    return RowShape(spec, stage, keep, values, copy_text, sqlite_row)
