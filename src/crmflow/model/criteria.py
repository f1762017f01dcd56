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


class EnrollmentCondition(StrEnum):
    HAS_BEEN_ENROLLED = "ENROLLMENT_CONDITION_HAS_BEEN_ENROLLED"
    HAS_NOT_BEEN_ENROLLED = "ENROLLMENT_CONDITION_HAS_NOT_BEEN_ENROLLED"
    IS_CURRENTLY_ENROLLED = "ENROLLMENT_CONDITION_IS_CURRENTLY_ENROLLED"
    IS_NOT_CURRENTLY_ENROLLED = "ENROLLMENT_CONDITION_IS_NOT_CURRENTLY_ENROLLED"


# "Has been enrolled in workflow X" is not a property of the record: the enrollment service
# knows it (its ledger's facts) and injects it into the record it evaluates as one virtual
# property per workflow, ``@enrollment:<workflow id>`` = CURRENT | PAST (absent: never). The
# filter then *is* a plain property filter on that name, so the evaluator, its trace and the
# trigger index (eq by value, neq by old value, is_known/is_unknown) need nothing new, and an
# enrollment elsewhere is a change of that property like any other.
ENROLLMENT_PROPERTY_PREFIX = "@enrollment:"
CURRENT = "current"
PAST = "past"
_CONDITION_FILTERS: dict[EnrollmentCondition, tuple[str, Any]] = {
    EnrollmentCondition.HAS_BEEN_ENROLLED: ("is_known", None),
    EnrollmentCondition.HAS_NOT_BEEN_ENROLLED: ("is_unknown", None),
    EnrollmentCondition.IS_CURRENTLY_ENROLLED: ("eq", CURRENT),
    EnrollmentCondition.IS_NOT_CURRENTLY_ENROLLED: ("neq", CURRENT),
}


def enrollment_property(workflow_id: str) -> str:
    """The virtual property carrying the record's enrollment state in ``workflow_id``."""
    return ENROLLMENT_PROPERTY_PREFIX + workflow_id


def is_virtual_property(name: str) -> bool:
    """Names starting with '@' are computed by the services, never sent by a CRM."""
    return name.startswith("@")


class WorkflowEnrollmentFilter(Model):
    """The record has (not) been / is (not) currently enrolled in ``workflow_id``."""

    workflow_id: str = Field(min_length=1, max_length=128)
    condition: EnrollmentCondition

    def as_property_filter(self) -> PropertyFilter:
        op, value = _CONDITION_FILTERS[self.condition]
        return PropertyFilter(
            property=enrollment_property(self.workflow_id), operator=op, value=value
        )


class FilterGroup(Model):
    conjunction: Conjunction = Conjunction.AND
    filters: list[PropertyFilter] = Field(default_factory=list)
    groups: list[FilterGroup] = Field(default_factory=list)
    # Combined with ``filters`` and ``groups`` under the same conjunction.
    enrollment_filters: list[WorkflowEnrollmentFilter] = Field(default_factory=list)

    @model_validator(mode="after")
    def _bounded_depth(self) -> FilterGroup:
        if _depth(self) > MAX_GROUP_DEPTH:
            raise ValueError(f"filter groups nest at most {MAX_GROUP_DEPTH} deep")
        return self

    def all_filters(self) -> list[PropertyFilter]:
        """``filters`` followed by the enrollment filters as virtual property filters (what
        evaluators and indexes read; trace paths past ``len(filters)`` name
        ``enrollment_filters[i]``)."""
        if not self.enrollment_filters:
            return self.filters
        return [*self.filters, *(e.as_property_filter() for e in self.enrollment_filters)]

    def properties(self) -> set[str]:
        """Properties of the enrolled record this group reads (used by the trigger index);
        enrollment filters read their virtual ``@enrollment:<workflow>`` property."""
        out = {f.property for f in self.all_filters() if f.association is None}
        for g in self.groups:
            out |= g.properties()
        return out

    def enrollment_workflows(self) -> set[str]:
        """Workflow ids the group's enrollment filters name (at any depth)."""
        out = {e.workflow_id for e in self.enrollment_filters}
        for g in self.groups:
            out |= g.enrollment_workflows()
        return out

    def without_enrollment_filters(self) -> FilterGroup:
        """A group every record matching this one also matches, without enrollment filters
        (what a CRM can search): such a filter becomes "true" - dropped from an AND, and an OR
        containing one matches everything. Callers confirm with the full group."""
        if not self.enrollment_workflows():
            return self
        subs = [g.without_enrollment_filters() for g in self.groups]
        if self.conjunction == Conjunction.OR and (
            self.enrollment_filters or any(g.is_empty() for g in subs)
        ):
            return FilterGroup()
        return FilterGroup(
            conjunction=self.conjunction,
            filters=list(self.filters),
            groups=[g for g in subs if not g.is_empty()],
        )

    def is_empty(self) -> bool:
        return (
            not self.filters
            and not self.enrollment_filters
            and all(g.is_empty() for g in self.groups)
        )


def _depth(group: FilterGroup) -> int:
    return 1 + max((_depth(g) for g in group.groups), default=0)
