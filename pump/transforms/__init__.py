"""Per-pump views of a batch: filters, then field rules. Pure functions, no I/O.

Tyk applies these in ``filterData`` (tyk-pump.md §5.1); the order does not change the result
because filters never look at the fields the rules change, and filtering first copies less.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pump.config.model import Config, PumpConfig
from pump.record import Record
from pump.transforms.fields import field_rules
from pump.transforms.filters import record_filter

View = Callable[[Sequence[Record]], Sequence[Record]]


def build_view(pump: PumpConfig, config: Config) -> View:
    """The function that turns a batch into what one pump should receive.

    Returns the batch itself (no copy) when the pump has neither filters nor field rules.
    Records are copied only when a rule changes them, so pumps never see each other's edits.
    """
    keep = record_filter(pump.filters)
    rule = field_rules(pump, config)
    if keep is None and rule is None:
        return lambda records: records
    if rule is None:
        assert keep is not None
        return lambda records: [r for r in records if keep(r)]
    if keep is None:
        return lambda records: [rule(r) for r in records]
    return lambda records: [rule(r) for r in records if keep(r)]


__all__ = ["View", "build_view"]
