"""Filter operators: a registry keyed by operator name; each describes itself for editors.

An operator is ``make(filter) -> predicate(value, now) -> bool``: operands are coerced once when
a criteria group is compiled, so evaluating an event costs only the comparison.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from crmflow.criteria.values import (
    as_number,
    as_set,
    as_text,
    as_timestamp,
    is_unknown,
)
from crmflow.errors import FieldViolation, InvalidArgument
from crmflow.model.criteria import PropertyFilter

Predicate = Callable[[Any, datetime], bool]

ALL_TYPES = ("string", "number", "bool", "date", "datetime", "enumeration", "multi_select", "owner")
TEXT = ("string", "enumeration", "owner")
ORDERED = ("number", "date", "datetime")
DATES = ("date", "datetime")


@dataclass(frozen=True)
class Operator:
    key: str
    label: str
    operand: str  # none | single | list | range | days
    property_types: tuple[str, ...]
    make: Callable[[PropertyFilter], Predicate]

    def check_operand(self, f: PropertyFilter, path: str) -> None:
        bad = None
        if self.operand == "single" and is_unknown(f.value):
            bad = "needs a value"
        elif self.operand == "list" and not f.values:
            bad = "needs values"
        elif self.operand == "range" and len(f.values) != 2:
            bad = "needs exactly two values (low, high)"
        elif self.operand == "days" and (as_number(f.value) is None or as_number(f.value) < 0):  # type: ignore[operator]
            bad = "needs a non-negative number of days"
        if bad:
            raise InvalidArgument(
                f"{path}: operator {self.key!r} {bad}",
                [FieldViolation(f"{path}.value", f"operator {self.key!r} {bad}")],
            )


def _ordered(cmp: Callable[[Any, Any], bool]) -> Callable[[PropertyFilter], Predicate]:
    def make(f: PropertyFilter) -> Predicate:
        num = as_number(f.value)
        if num is not None:
            return lambda v, now: (x := as_number(v)) is not None and cmp(x, num)
        when = as_timestamp(f.value)
        # dates compare as POSIX seconds (same order as datetimes, no object per call)
        return lambda v, now: (
            when is not None and (x := as_timestamp(v)) is not None and cmp(x, when)
        )

    return make


def _between(f: PropertyFilter) -> Predicate:
    lo, hi = f.values[0], f.values[1]
    nlo, nhi = as_number(lo), as_number(hi)
    if nlo is not None and nhi is not None:
        return lambda v, now: (x := as_number(v)) is not None and nlo <= x <= nhi
    dlo, dhi = as_timestamp(lo), as_timestamp(hi)
    return lambda v, now: (
        dlo is not None
        and dhi is not None
        and (x := as_timestamp(v)) is not None
        and dlo <= x <= dhi
    )


def _within(direction: int) -> Callable[[PropertyFilter], Predicate]:
    def make(f: PropertyFilter) -> Predicate:
        span = timedelta(days=as_number(f.value) or 0).total_seconds()

        def pred(v: Any, now: datetime) -> bool:
            x = as_timestamp(v)
            if x is None:
                return False
            t = now.timestamp()
            return t - span <= x <= t if direction < 0 else t <= x <= t + span

        return pred

    return make


def _more_than_days_ago(f: PropertyFilter) -> Predicate:
    span = timedelta(days=as_number(f.value) or 0).total_seconds()

    def pred(v: Any, now: datetime) -> bool:
        x = as_timestamp(v)
        return x is not None and x < now.timestamp() - span

    return pred


# Operators whose result changes with the passage of time alone (re-checked by a schedule).
TIME_RELATIVE = frozenset({"within_last_days", "within_next_days", "more_than_days_ago"})


def _in(f: PropertyFilter) -> Predicate:
    wanted = frozenset(as_text(x) for x in f.values)

    def pred(v: Any, now: datetime) -> bool:
        if isinstance(v, str) and ";" not in v:  # the common single value: no set needed
            return v != "" and v.casefold() in wanted
        return not is_unknown(v) and not wanted.isdisjoint(as_set(v))

    return pred


def _text(test: Callable[[str, str], bool]) -> Callable[[PropertyFilter], Predicate]:
    def make(f: PropertyFilter) -> Predicate:
        needle = as_text(f.value)
        return lambda v, now: not is_unknown(v) and test(as_text(v), needle)

    return make


def _eq(f: PropertyFilter) -> Predicate:
    """values.equal(v, operand) with the operand coerced once (the hot path of the index)."""
    operand = f.value
    num = as_number(operand)
    text = as_text(operand)

    def pred(v: Any, now: datetime) -> bool:
        if is_unknown(v):
            return False
        if num is not None:
            x = as_number(v)
            if x is not None:
                return x == num
        return as_text(v) == text

    return pred


_LIST: list[Operator] = [
    Operator("eq", "is equal to", "single", ALL_TYPES, _eq),
    Operator(
        "neq",
        "is not equal to",
        "single",
        ALL_TYPES,
        lambda f: (lambda p: lambda v, now: not p(v, now))(_eq(f)),
    ),
    Operator("in", "is any of", "list", ALL_TYPES, _in),
    Operator(
        "not_in",
        "is none of",
        "list",
        ALL_TYPES,
        lambda f: (lambda p: lambda v, now: not p(v, now))(_in(f)),
    ),
    Operator(
        "has_all",
        "has all of",
        "list",
        ("multi_select",),
        lambda f: (lambda w: lambda v, now: w <= as_set(v))({as_text(x) for x in f.values}),
    ),
    Operator("contains", "contains", "single", TEXT, _text(lambda a, b: b in a)),
    Operator(
        "not_contains",
        "doesn't contain",
        "single",
        TEXT,
        lambda f: (lambda p: lambda v, now: not p(v, now))(_text(lambda a, b: b in a)(f)),
    ),
    Operator("starts_with", "starts with", "single", TEXT, _text(str.startswith)),
    Operator("ends_with", "ends with", "single", TEXT, _text(str.endswith)),
    Operator("gt", "is greater than", "single", ORDERED, _ordered(lambda a, b: a > b)),
    Operator(
        "gte", "is greater than or equal to", "single", ORDERED, _ordered(lambda a, b: a >= b)
    ),
    Operator("lt", "is less than", "single", ORDERED, _ordered(lambda a, b: a < b)),
    Operator("lte", "is less than or equal to", "single", ORDERED, _ordered(lambda a, b: a <= b)),
    Operator("between", "is between", "range", ORDERED, _between),
    Operator("before", "is before", "single", DATES, _ordered(lambda a, b: a < b)),
    Operator("after", "is after", "single", DATES, _ordered(lambda a, b: a > b)),
    Operator("within_last_days", "is within the last N days", "days", DATES, _within(-1)),
    Operator("within_next_days", "is within the next N days", "days", DATES, _within(1)),
    Operator("more_than_days_ago", "is more than N days ago", "days", DATES, _more_than_days_ago),
    Operator("is_known", "is known", "none", ALL_TYPES, lambda f: lambda v, now: not is_unknown(v)),
    Operator("is_unknown", "is unknown", "none", ALL_TYPES, lambda f: lambda v, now: is_unknown(v)),
]

OPERATORS: dict[str, Operator] = {op.key: op for op in _LIST}


def get_operator(key: str, *, path: str = "operator") -> Operator:
    try:
        return OPERATORS[key]
    except KeyError:
        raise InvalidArgument(
            f"{path}: unknown operator {key!r}",
            [FieldViolation(path, f"unknown operator {key!r}; known: {', '.join(OPERATORS)}")],
        ) from None
