"""Evaluate a FilterGroup against a record (and its associated records), with a trace."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from crmflow.criteria.operators import Predicate, get_operator
from crmflow.model.criteria import AssociationQuantifier, Conjunction, FilterGroup, PropertyFilter

# Associated records keyed by "object_type" or "object_type:label".
Associated = Mapping[str, Sequence[Mapping[str, Any]]]
Matcher = Callable[[Mapping[str, Any], datetime, Associated], bool]


def association_key(object_type: str, label: str = "") -> str:
    return f"{object_type}:{label}" if label else object_type


# Where a service that has no separate ``associated`` mapping (the enrollment service's hot
# path) puts a record's associated records: a virtual property of the record itself, so old
# and new states of an association change are just two values of one property.
ASSOCIATED_PREFIX = "@assoc:"


def associated_of(
    rec: Mapping[str, Any], assoc: Associated, key: str
) -> Sequence[Mapping[str, Any]]:
    """The associated records under ``key``: from ``assoc``, else the record's virtual
    ``@assoc:<key>`` property, else none."""
    others = assoc.get(key)
    if others is None:
        others = rec.get(ASSOCIATED_PREFIX + key) or ()
    return others


@dataclass(frozen=True)
class FilterTrace:
    path: str
    property: str
    operator: str
    operand: Any
    seen: Any
    matched: bool


@dataclass
class EvalResult:
    matched: bool
    trace: list[FilterTrace] = field(default_factory=list)


def _filter_matcher(f: PropertyFilter, path: str) -> Matcher:
    op = get_operator(f.operator, path=f"{path}.operator")
    op.check_operand(f, path)
    pred: Predicate = op.make(f)
    prop = f.property
    scope = f.association
    if scope is None:
        return lambda rec, now, assoc: pred(rec.get(prop), now)
    key = association_key(scope.object_type, scope.label)
    q = scope.quantifier

    def over_associated(rec: Mapping[str, Any], now: datetime, assoc: Associated) -> bool:
        others = associated_of(rec, assoc, key)
        hits = (pred(o.get(prop), now) for o in others)
        if q == AssociationQuantifier.ANY:
            return any(hits)
        if q == AssociationQuantifier.ALL:
            return bool(others) and all(hits)
        return not any(hits)

    return over_associated


def _filter_path(group: FilterGroup, path: str, i: int) -> str:
    """Path of the i-th of ``group.all_filters()``: enrollment filters keep their own name."""
    n = len(group.filters)
    return f"{path}.filters[{i}]" if i < n else f"{path}.enrollment_filters[{i - n}]"


def compile_group(group: FilterGroup, path: str = "filter") -> Matcher:
    """A closure for the hot path. Raises InvalidArgument naming a bad filter."""
    parts: list[Matcher] = [
        _filter_matcher(f, _filter_path(group, path, i)) for i, f in enumerate(group.all_filters())
    ] + [compile_group(g, f"{path}.groups[{i}]") for i, g in enumerate(group.groups)]
    if not parts:
        return lambda rec, now, assoc: True
    if len(parts) == 1:
        return parts[0]
    # Plain loops: measurably faster than any()/all() over a generator on the hot path.
    if group.conjunction == Conjunction.OR:

        def any_of(rec: Mapping[str, Any], now: datetime, assoc: Associated) -> bool:
            for p in parts:
                if p(rec, now, assoc):
                    return True
            return False

        return any_of

    def all_of(rec: Mapping[str, Any], now: datetime, assoc: Associated) -> bool:
        for p in parts:
            if not p(rec, now, assoc):
                return False
        return True

    return all_of


def evaluate(
    group: FilterGroup,
    record: Mapping[str, Any],
    *,
    now: datetime,
    associated: Associated | None = None,
    path: str = "filter",
) -> EvalResult:
    """Evaluate every filter (no short-circuit) so the trace is complete."""
    assoc = associated or {}
    trace: list[FilterTrace] = []

    def walk(g: FilterGroup, p: str) -> bool:
        results = []
        for i, f in enumerate(g.all_filters()):
            fp = _filter_path(g, p, i)
            ok = _filter_matcher(f, fp)(record, now, assoc)
            seen: Any
            if f.association is None:
                seen = record.get(f.property)
            else:
                key = association_key(f.association.object_type, f.association.label)
                seen = [o.get(f.property) for o in associated_of(record, assoc, key)]
            operand = f.values if f.values else f.value
            trace.append(FilterTrace(fp, f.property, f.operator, operand, seen, ok))
            results.append(ok)
        for i, sub in enumerate(g.groups):
            results.append(walk(sub, f"{p}.groups[{i}]"))
        if not results:
            return True
        return any(results) if g.conjunction == Conjunction.OR else all(results)

    return EvalResult(walk(group, path), trace)
