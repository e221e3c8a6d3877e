"""Per-pump views of a batch: filters, then field rules. Pure functions, no I/O.

Tyk applies these in ``filterData`` (tyk-pump.md §5.1); the order does not change the result
because filters never look at the fields the rules change, and filtering first copies less.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pump.config.model import Config, PumpConfig
from pump.record import Record
from pump.transforms.conditions import compile_conditions
from pump.transforms.fields import field_rules
from pump.transforms.filters import record_filter
from pump.transforms.masking import compile_mask
from pump.transforms.useragent import with_user_agent_fields

View = Callable[[Sequence[Record]], Sequence[Record]]


def build_view(pump: PumpConfig, config: Config) -> View:
    """The function that turns a batch into what one pump should receive.

    Steps, in order: Tyk's ``filters``, our ``conditions`` (both must pass; conditions see the
    original values), ``mask`` and ``user_agent_fields`` (copies of the records they change), then
    the field rules (which also copy). Masking runs before the field rules because header masking
    needs the base64 payload that ``raw_*_decoded`` and ``max_record_size`` would change.

    Returns the batch itself (no copy) when the pump has none of these. Records are copied only
    when a step changes them, so pumps never see each other's edits.
    """
    keep = record_filter(pump.filters)
    chosen = compile_conditions(pump.conditions, "conditions")
    masker = compile_mask(pump.mask)
    rule = field_rules(pump, config)
    steps: list[View] = []
    if keep is not None:
        steps.append(lambda records: [r for r in records if keep(r)])
    if chosen is not None:
        steps.append(chosen)
    if pump.user_agent_fields:
        steps.append(with_user_agent_fields)
    if masker is not None:
        steps.append(masker)
    if rule is not None:
        steps.append(lambda records: [rule(r) for r in records])
    if not steps:
        return lambda records: records
    if len(steps) == 1:
        return steps[0]

    def view(records: Sequence[Record]) -> Sequence[Record]:
        for step in steps:
            records = step(records)
        return records

    return view


__all__ = ["View", "build_view"]
