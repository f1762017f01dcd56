"""FilterGroup -> SQL WHERE clause over ``crm_value`` (bound parameters only).

Every property name is looked up in the object type's definitions before it reaches SQL (an
unknown one is INVALID_ARGUMENT naming ``<field>.filters[i].property``), and all operands are
bound parameters; no SQL text is ever built from a user string.

Each filter becomes ``record_id [NOT] IN (ids with a matching typed value row)`` - a
non-correlated sub-query each database turns into one index range scan + a hash/semi-join - so the
semantics follow ``crmflow.criteria`` (negative operators - neq, not_in, not_contains - match
records with no value, as the evaluator does). Text compares case-folded; numbers, dates and
datetimes compare on ``value_num`` (epoch seconds for dates), with the operand read according
to the *property's* type (an epoch-millisecond operand on a date property is a date).
Association-scoped filters (ANY / ALL / NONE of the associated records) are the same shape
over ``crm_association`` (ids linked to an id set).

Operators registered in ``crmflow.criteria.OPERATORS`` but missing from ``SQL_OPERATORS`` (a
newer operator) cannot be translated: ``needs_python`` reports it and the store then evaluates
the whole group with ``crmflow.criteria`` in Python over the object type's records - correct
but a full scan, so new operators should get a translation here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from crmflow.criteria import get_operator
from crmflow.criteria.values import as_datetime, as_number, as_text
from crmflow.errors import InvalidArgument
from crmflow.model.criteria import AssociationQuantifier, Conjunction, FilterGroup, PropertyFilter
from crmflow.records.port import PropertyDefinition, PropertyType
from crmflow.records.schema import Schema
from crmflow.records.tables import TEXT_INDEX_LEN, CrmAssociation, CrmValue

V = CrmValue.__table__  # type: ignore[attr-defined]
A = CrmAssociation.__table__  # type: ignore[attr-defined]

NUMERIC = (PropertyType.NUMBER, PropertyType.DATE, PropertyType.DATETIME)

Cond = Callable[[Any], ColumnElement[bool]]  # value-table alias -> condition on its row

# Negative operators match records with no value, like the evaluator: NOT IN (positive ids).
NEGATED = {"neq": "eq", "not_in": "in", "not_contains": "contains", "is_unknown": "is_known"}

SQL_OPERATORS = frozenset(
    {
        "eq",
        "neq",
        "in",
        "not_in",
        "has_all",
        "contains",
        "not_contains",
        "starts_with",
        "ends_with",
        "gt",
        "gte",
        "lt",
        "lte",
        "between",
        "before",
        "after",
        "within_last_days",
        "within_next_days",
        "more_than_days_ago",
        "is_known",
        "is_unknown",
    }
)


def refuse_enrollment_filters(group: FilterGroup, path: str = "criteria") -> None:
    """ "Has been enrolled in workflow X" is enrollment history, not CRM data: the enrollment
    service evaluates it (and searches the CRM without it). Silently dropping it would widen
    an AND and narrow an OR, so a search naming one is refused."""
    if group.enrollment_filters:
        raise InvalidArgument.field(
            f"{path}.enrollment_filters[0]",
            "the CRM cannot search enrollment history (the enrollment service evaluates it)",
        )
    for i, g in enumerate(group.groups):
        refuse_enrollment_filters(g, f"{path}.groups[{i}]")


def needs_python(group: FilterGroup) -> bool:
    return any(f.operator not in SQL_OPERATORS for f in group.filters) or any(
        needs_python(g) for g in group.groups
    )


def value_rows(prop: PropertyDefinition, value: Any) -> list[tuple[str | None, float | None]]:
    """The (value_text, value_num) rows stored for one normalised property value."""
    if value is None:
        return []
    if prop.type == PropertyType.MULTI_SELECT:
        return [(as_text(v)[:TEXT_INDEX_LEN], None) for v in value]
    if prop.type == PropertyType.NUMBER:
        return [(None, float(value))]
    if prop.type in (PropertyType.DATE, PropertyType.DATETIME):
        when = as_datetime(value)
        return [(None, when.timestamp())] if when else []
    return [(as_text(value)[:TEXT_INDEX_LEN], None)]


def _like_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class Translator:
    """Translates groups for one tenant; ``schemas`` holds every object type a group can name."""

    def __init__(self, tenant_id: str, schemas: Mapping[str, Schema], now: datetime) -> None:
        self.tenant_id = tenant_id
        self.schemas = schemas
        self.now = now

    def group(self, g: FilterGroup, object_type: str, rid: Any, path: str) -> ColumnElement[bool]:
        parts = [
            self.filter(f, object_type, rid, f"{path}.filters[{i}]")
            for i, f in enumerate(g.filters)
        ]
        parts += [
            self.group(s, object_type, rid, f"{path}.groups[{i}]") for i, s in enumerate(g.groups)
        ]
        if not parts:
            return sa.true()
        return sa.or_(*parts) if g.conjunction == Conjunction.OR else sa.and_(*parts)

    def filter(
        self, f: PropertyFilter, object_type: str, rid: Any, path: str
    ) -> ColumnElement[bool]:
        scope = f.association
        target = scope.object_type if scope else object_type
        schema = self.schemas[target]
        prop = schema.get(f.property, f"{path}.property")
        op = get_operator(f.operator, path=f"{path}.operator")
        op.check_operand(f, path)
        if prop.type.value not in op.property_types:
            raise InvalidArgument.field(
                f"{path}.operator",
                f"operator {op.key!r} does not apply to {prop.type.value} property {prop.name!r}",
            )
        if scope is None:
            return self._predicate(f, prop, object_type, rid, path)

        # Record ids linked to the associated type, as a non-correlated sub-query: the
        # database builds each id set once (index scans) instead of probing per record.
        def linked(hits: bool | None = None) -> Any:  # None: any link; True/False: (not) hit
            a = A.alias()
            where = [
                a.c.tenant_id == self.tenant_id,
                a.c.from_type == object_type,
                a.c.to_type == scope.object_type,
                *([a.c.label == scope.label] if scope.label else []),
            ]
            hit = self._predicate(f, prop, scope.object_type, a.c.to_id, path)
            if hits is not None:
                where.append(hit if hits else ~hit)
            return sa.select(a.c.from_id).where(*where)

        if scope.quantifier == AssociationQuantifier.ANY:
            return rid.in_(linked(True))
        if scope.quantifier == AssociationQuantifier.NONE:
            return ~rid.in_(linked(True))
        return sa.and_(rid.in_(linked()), ~rid.in_(linked(False)))

    # -- one filter on one record --------------------------------------------------------
    def ids(self, prop: PropertyDefinition, object_type: str, cond: Cond | None) -> Any:
        """Ids of records with a value row of ``prop`` matching ``cond`` (any value: None)."""
        v = V.alias()
        where = [
            v.c.tenant_id == self.tenant_id,
            v.c.object_type == object_type,
            v.c.property == prop.name,
        ]
        if cond is not None:
            where.append(cond(v))
        return sa.select(v.c.record_id).where(*where)

    def single_id_set(self, group: FilterGroup, object_type: str, path: str) -> Any | None:
        """For a group that is one positive filter on the record itself, the id set it matches
        (a count can then read the value index alone); None otherwise."""
        if len(group.filters) != 1 or group.groups:
            return None
        f = group.filters[0]
        if f.association is not None or f.operator in NEGATED or f.operator == "has_all":
            return None
        self.filter(f, object_type, sa.literal(""), f"{path}.filters[0]")  # validates
        prop = self.schemas[object_type].properties[f.property]
        return self.ids(prop, object_type, self._cond(f.operator, f, prop, f"{path}.filters[0]"))

    def _predicate(
        self, f: PropertyFilter, prop: PropertyDefinition, object_type: str, rid: Any, path: str
    ) -> ColumnElement[bool]:
        """``rid [NOT] IN (ids with a matching value row)``: non-correlated sub-queries."""
        key = f.operator
        if key == "has_all":
            return sa.and_(
                *[
                    rid.in_(self.ids(prop, object_type, self._equals(prop, [x], f"{path}.values")))
                    for x in f.values
                ]
            )
        if key in NEGATED:
            return ~rid.in_(self.ids(prop, object_type, self._cond(NEGATED[key], f, prop, path)))
        return rid.in_(self.ids(prop, object_type, self._cond(key, f, prop, path)))

    def _cond(
        self, key: str, f: PropertyFilter, prop: PropertyDefinition, path: str
    ) -> Cond | None:
        """The value-row condition of a positive operator."""
        if key == "is_known":
            return None
        if key == "eq":
            return self._equals(prop, [f.value], f"{path}.value")
        if key == "in":
            return self._equals(prop, f.values, f"{path}.values")
        if key in ("contains", "starts_with", "ends_with"):
            needle = _like_escape(as_text(f.value))
            pattern = {"starts_with": f"{needle}%", "ends_with": f"%{needle}"}.get(
                key, f"%{needle}%"
            )
            return lambda v: v.c.value_text.like(pattern, escape="\\")
        if key in ("gt", "gte", "lt", "lte", "before", "after"):
            x = self._num(prop, f.value, f"{path}.value")
            cmp: dict[str, Cond] = {
                "gt": lambda v: v.c.value_num > x,
                "after": lambda v: v.c.value_num > x,
                "gte": lambda v: v.c.value_num >= x,
                "lte": lambda v: v.c.value_num <= x,
                "lt": lambda v: v.c.value_num < x,
                "before": lambda v: v.c.value_num < x,
            }
            return cmp[key]
        if key == "between":
            lo = self._num(prop, f.values[0], f"{path}.values[0]")
            hi = self._num(prop, f.values[1], f"{path}.values[1]")
            return lambda v: v.c.value_num.between(lo, hi)
        if key in ("within_last_days", "within_next_days"):
            days = timedelta(days=as_number(f.value) or 0)
            lo_t, hi_t = (
                (self.now - days, self.now)
                if key == "within_last_days"
                else (self.now, self.now + days)
            )
            return lambda v: v.c.value_num.between(lo_t.timestamp(), hi_t.timestamp())
        if key == "more_than_days_ago":
            before = (self.now - timedelta(days=as_number(f.value) or 0)).timestamp()
            return lambda v: v.c.value_num < before
        raise InvalidArgument.field(f"{path}.operator", f"operator {key!r} has no SQL form")

    def _equals(self, prop: PropertyDefinition, operands: list[Any], path: str) -> Cond:
        if prop.type in NUMERIC:
            nums = [self._num(prop, x, path) for x in operands]
            if prop.type == PropertyType.DATE:  # a date equals any instant of that day
                return lambda v: sa.or_(*[v.c.value_num.between(n, n + 86399.999) for n in nums])
            return lambda v: v.c.value_num.in_(nums)
        texts = [as_text(x)[:TEXT_INDEX_LEN] for x in operands]
        return lambda v: v.c.value_text.in_(texts)

    def _num(self, prop: PropertyDefinition, operand: Any, path: str) -> float:
        if prop.type == PropertyType.NUMBER:
            n = as_number(operand)
            if n is None:
                raise InvalidArgument.field(path, f"{operand!r} is not a number")
            return n
        when = as_datetime(operand)
        if when is None:
            raise InvalidArgument.field(
                path, f"{operand!r} is not a date (ISO-8601 or epoch milliseconds)"
            )
        if prop.type == PropertyType.DATE:
            when = when.replace(hour=0, minute=0, second=0, microsecond=0)
        return when.timestamp()
