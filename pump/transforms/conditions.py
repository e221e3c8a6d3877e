"""``conditions``: which records a pump receives, as webMethods' custom destinations choose them.

``conditions: {type: and|or, rules: [{variable, operator, value}]}`` sits beside Tyk's
``filters``; a record reaches the pump only if it passes both. Each rule is compiled once into a
function over a whole batch: the variable is read as a column (:mod:`pump.transforms.variables`)
and the operator is mapped over it with C-level callables (``operator.eq``, ``frozenset``
membership, ``str.startswith``, a compiled regex's ``search``), so a rule costs one pass over the
batch, not a Python call per record and operator. ``and`` rules run on the survivors of the rules
before them, ``or`` rules on the records not yet chosen, so later rules see fewer records.

Semantics:

* strings: ``contains``/``starts with``/``ends with``/``matches`` (``re.search``) are case-sensitive;
* lists (``tags``, ``graphql_stats.RootFields``): a rule holds if it holds for *any* element
  (``contains x`` and ``equals x`` both mean "has the element x"); ``not equals x`` means none is x;
* ``in``: the value is a list of allowed values;
* ``>``, ``>=``, ``<``, ``<=``: numeric variables, and times (``timestamp``, ``expireAt``) against an
  ISO 8601 value;
* ``exists``: the field is not its zero value (Go leaves absent fields zero); ``value: false``
  inverts it.

A rule naming an unknown variable, a regex that does not compile, or a value of the wrong type
fails ``pump validate`` with the rule's position (``pumps.csv.conditions.rules[2]: ...``).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from itertools import compress, repeat
from typing import Any

from pump.config.analytics import OPERATORS, ConditionRule, Conditions
from pump.gotime import unix_ns
from pump.record import Record
from pump.transforms.variables import VARIABLES, Variable, suggest

#: A compiled rule: a batch in, one flag per record out.
Select = Callable[[Sequence[Record]], list[bool]]
#: A compiled condition set: a batch in, the records kept out (order preserved).
Keep = Callable[[Sequence[Record]], list[Record]]

_NUMERIC = ("int", "float", "time")
_ORDER = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


class ConditionError(ValueError):
    """A rule that cannot be compiled; the message names the rule."""


def compile_conditions(conditions: Conditions | None, where: str = "conditions") -> Keep | None:
    """The batch function of a pump's conditions, or None when there are none.

    Raises :class:`ConditionError` listing every rule that is wrong, each prefixed by
    ``<where>.rules[i]``."""
    if conditions is None or not conditions.rules:
        return None
    selects: list[Select] = []
    problems: list[str] = []
    for i, rule in enumerate(conditions.rules):
        try:
            selects.append(compile_rule(rule))
        except ConditionError as exc:
            problems.append(f"{where}.rules[{i}]: {exc}")
    if problems:
        raise ConditionError("\n".join(problems))
    return _all(selects) if conditions.type == "and" else _any(selects)


def check_conditions(conditions: Conditions | None, where: str) -> list[str]:
    """Every problem of a pump's conditions, one line each (for ``pump validate``)."""
    try:
        compile_conditions(conditions, where)
    except ConditionError as exc:
        return str(exc).splitlines()
    return []


def _all(selects: list[Select]) -> Keep:
    def keep(records: Sequence[Record]) -> list[Record]:
        kept = list(records)
        for select in selects:
            if not kept:
                break
            kept = list(compress(kept, select(kept)))
        return kept

    return keep


def _any(selects: list[Select]) -> Keep:
    def keep(records: Sequence[Record]) -> list[Record]:
        chosen = [False] * len(records)
        pending = list(range(len(records)))
        for select in selects:
            if not pending:
                break
            flags = select([records[i] for i in pending])
            still: list[int] = []
            for i, flag in zip(pending, flags, strict=True):
                if flag:
                    chosen[i] = True
                else:
                    still.append(i)
            pending = still
        return list(compress(records, chosen))

    return keep


# --------------------------------------------------------------------------- one rule


def compile_rule(rule: ConditionRule) -> Select:
    """One rule → its batch function. Raises :class:`ConditionError` naming what is wrong."""
    var = VARIABLES.get(rule.variable)
    if var is None:
        raise ConditionError(f"unknown variable {rule.variable!r}{suggest(rule.variable)}; use a record field's Tyk JSON name")
    op, value = rule.operator, rule.value
    if op not in OPERATORS:
        raise ConditionError(f"unknown operator {op!r}; expected one of: {', '.join(OPERATORS)}")
    if op == "exists":
        want = True if value is None else value
        if not isinstance(want, bool):
            raise ConditionError(f"'exists' takes no value or true/false (got {value!r})")
        return _column_map(var, bool if want else operator.not_)
    if value is None:
        raise ConditionError(f"{op!r} needs a value")
    if var.kind == "dict":
        raise ConditionError(f"{var.name!r} is a map; only 'exists' applies to it")
    if op in _ORDER:
        if var.kind not in _NUMERIC:
            raise ConditionError(f"{op!r} needs a numeric or time variable; {var.name!r} is a {_kind_word(var)}")
        return _ordered(var, _ORDER[op], _scalar(var, value))
    if op == "in":
        if not isinstance(value, list) or not value:
            raise ConditionError(f"'in' needs a non-empty list of values (got {value!r})")
        allowed = frozenset(_scalar(var, v) for v in value)
        return _element_test(var, allowed.__contains__)
    if op in ("equals", "not equals"):
        target = _scalar(var, value)
        test = _element_test(var, _eq(target)) if var.kind == "list" else _column_cmp(var, operator.eq, target)
        return test if op == "equals" else _negate(test)
    return _text_rule(var, op, value)


def _text_rule(var: Variable, op: str, value: Any) -> Select:
    """``contains``, ``starts with``, ``ends with``, ``matches`` on a text or list variable."""
    if var.kind not in ("str", "list"):
        raise ConditionError(f"{op!r} needs a text variable; {var.name!r} is a {_kind_word(var)}")
    if not isinstance(value, str):
        raise ConditionError(f"{op!r} needs a text value (got {value!r})")
    if op == "matches":
        try:
            pattern = re.compile(value)
        except re.error as exc:
            raise ConditionError(f"bad regular expression {value!r}: {exc}") from None
        return _element_test(var, lambda s: isinstance(s, str) and pattern.search(s) is not None, pattern.search)
    if op == "contains":
        if var.kind == "list":
            return _element_test(var, _eq(value))
        return _column_cmp(var, operator.contains, value)
    method = str.startswith if op == "starts with" else str.endswith
    return _element_test(var, lambda s: isinstance(s, str) and method(s, value), None, method, value)


def _kind_word(var: Variable) -> str:
    return {"str": "text", "int": "number", "float": "number", "bool": "true/false", "list": "list", "dict": "map"}.get(var.kind, var.kind)


def _scalar(var: Variable, value: Any) -> Any:
    """``value`` as the variable's element type, or :class:`ConditionError`."""
    kind = "str" if var.kind == "list" else var.kind
    if kind == "str" and isinstance(value, str):
        return value
    if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind == "float" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "time":
        return _time_ns(value)
    raise ConditionError(f"{var.name!r} is a {_kind_word(var)}; the value {value!r} is not")


def _time_ns(value: Any) -> int:
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ConditionError(f"{value!r} is not an ISO 8601 time (e.g. 2024-01-15T13:00:00Z)") from None
    else:
        raise ConditionError(f"times are compared with an ISO 8601 text value (got {value!r})")
    return unix_ns(dt if dt.tzinfo else dt.replace(tzinfo=UTC))


def _eq(target: Any) -> Callable[[Any], bool]:
    return lambda v: bool(v == target)


def _column_map(var: Variable, fn: Callable[[Any], Any]) -> Select:
    column = var.column
    return lambda records: list(map(fn, column(records)))


def _column_cmp(var: Variable, op: Callable[[Any, Any], Any], target: Any) -> Select:
    column = var.column
    return lambda records: list(map(op, column(records), repeat(target)))


def _ordered(var: Variable, op: Callable[[Any, Any], Any], target: Any) -> Select:
    column = var.column
    if var.kind == "float":
        return lambda records: [op(float(v or 0.0), target) for v in column(records)]
    return lambda records: list(map(op, column(records), repeat(target)))


def _element_test(
    var: Variable,
    test: Callable[[Any], bool],
    fast: Callable[[str], Any] | None = None,
    method: Callable[[str, str], bool] | None = None,
    arg: str = "",
) -> Select:
    """``test`` on a scalar column, or *any element* of a list column. ``fast``/``method`` are the
    C-level forms used on a plain text column (no per-record Python call)."""
    column = var.column
    if var.kind == "list":
        return lambda records: [any(map(test, v)) if v else False for v in column(records)]
    if var.kind == "str" and method is not None:
        return lambda records: list(map(method, column(records), repeat(arg)))
    if var.kind == "str" and fast is not None:
        return lambda records: [m is not None for m in map(fast, column(records))]
    return lambda records: list(map(test, column(records)))


def _negate(select: Select) -> Select:
    return lambda records: [not flag for flag in select(records)]


__all__ = ["ConditionError", "Keep", "check_conditions", "compile_conditions", "compile_rule"]
