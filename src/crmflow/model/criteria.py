"""Filter criteria: nested AND/OR groups of property filters (HubSpot's filter branches).

The evaluator lives in ``crmflow.criteria``; operators are a registry there, keyed by the
``operator`` string, so the model stays open to new operators.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field, model_validator

from crmflow.model.base import Model

MAX_GROUP_DEPTH = 5


class Conjunction(StrEnum):
    AND = "CONJUNCTION_AND"
    OR = "CONJUNCTION_OR"


class AssociationQuantifier(StrEnum):
    ANY = "ASSOCIATION_QUANTIFIER_ANY"  # at least one associated record matches
    ALL = "ASSOCIATION_QUANTIFIER_ALL"  # every associated record matches (and there is one)
    NONE = "ASSOCIATION_QUANTIFIER_NONE"  # no associated record matches


class AssociationScope(Model):
    """Makes a filter read the enrolled record's associated records of ``object_type``."""

    object_type: str
    label: str = ""
    quantifier: AssociationQuantifier = AssociationQuantifier.ANY


class PropertyFilter(Model):
    property: str
    operator: str
    # Operand(s); which one is read depends on the operator's operand kind.
    value: Any = None
    values: list[Any] = Field(default_factory=list)
    association: AssociationScope | None = None


class FilterGroup(Model):
    conjunction: Conjunction = Conjunction.AND
    filters: list[PropertyFilter] = Field(default_factory=list)
    groups: list[FilterGroup] = Field(default_factory=list)

    @model_validator(mode="after")
    def _bounded_depth(self) -> FilterGroup:
        if _depth(self) > MAX_GROUP_DEPTH:
            raise ValueError(f"filter groups nest at most {MAX_GROUP_DEPTH} deep")
        return self

    def properties(self) -> set[str]:
        """Properties of the enrolled record this group reads (used by the trigger index)."""
        out = {f.property for f in self.filters if f.association is None}
        for g in self.groups:
            out |= g.properties()
        return out

    def is_empty(self) -> bool:
        return not self.filters and all(g.is_empty() for g in self.groups)


def _depth(group: FilterGroup) -> int:
    return 1 + max((_depth(g) for g in group.groups), default=0)
