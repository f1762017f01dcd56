"""A published revision compiled once for the hot path: matchers for every trigger it has.

Roles a trigger can play for a workflow (``TriggerRef.role``):

* ``enroll``   — an enrollment trigger (criteria: on the not-matching -> matching transition);
* ``reenroll`` — a re-enrollment trigger that is not also an enrollment trigger;
* ``unenroll`` — an unenrollment trigger;
* ``goal``     — the goal criteria started to match (unenroll; and block enrollment);
* ``stay``     — the enrollment criteria stopped matching (unenroll when so set).
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from crmflow.criteria import compile_group
from crmflow.criteria.evaluate import Matcher
from crmflow.criteria.values import as_text, is_unknown
from crmflow.model.criteria import Conjunction, FilterGroup
from crmflow.model.records import ChangeEvent, ChangeEventType
from crmflow.model.triggers import EventTrigger, EventType, Trigger
from crmflow.model.workflow import PublishedRevision, WorkflowDefinition

EMPTY: Mapping[str, Any] = {}


class TriggerRef(NamedTuple):
    workflow_id: str
    role: str
    idx: int


# ChangeEventType -> EventType for the kinds that map one to one.
_EVENT_OF_CHANGE = {
    ChangeEventType.RECORD_CREATED: EventType.RECORD_CREATED,
    ChangeEventType.RECORD_DELETED: EventType.RECORD_DELETED,
    ChangeEventType.FORM_SUBMITTED: EventType.FORM_SUBMITTED,
    ChangeEventType.CUSTOM_EVENT: EventType.CUSTOM_EVENT,
    ChangeEventType.ASSOCIATION_ADDED: EventType.ASSOCIATION_ADDED,
    ChangeEventType.ASSOCIATION_REMOVED: EventType.ASSOCIATION_REMOVED,
    ChangeEventType.LIST_MEMBERSHIP_ADDED: EventType.LIST_MEMBERSHIP_ADDED,
    ChangeEventType.LIST_MEMBERSHIP_REMOVED: EventType.LIST_MEMBERSHIP_REMOVED,
}


def _prop_to(prop: str, value: Any) -> str:
    """Key of "property changed to value" (the value as the trigger's to_values compare it)."""
    return f"{prop}\x1f{as_text(value)}"


def event_trigger_keys(t: EventTrigger) -> list[tuple[str, str]]:
    """Where an event trigger is filed in the index (see ``event_keys``)."""
    et = t.event_type
    if et == EventType.PROPERTY_CHANGED:
        if t.to_values:  # filed by target value: a change to another value never looks at it
            return [("prop_to", _prop_to(t.property, v)) for v in t.to_values]
        return [("prop", t.property)]
    if et == EventType.FORM_SUBMITTED:
        return [("form", t.form_id or "*")]
    if et == EventType.CUSTOM_EVENT:
        return [("custom", t.event_name)]
    if et in (EventType.ASSOCIATION_ADDED, EventType.ASSOCIATION_REMOVED):
        return [(et.value, t.association_object_type or "*")]
    if et in (EventType.LIST_MEMBERSHIP_ADDED, EventType.LIST_MEMBERSHIP_REMOVED):
        return [(et.value, t.list_id)]
    return [(et.value, "")]


def event_keys(ev: ChangeEvent, properties: Container[str] | None = None) -> list[tuple[str, str]]:
    """The index keys an event can fire (a creation also 'changes' the properties it sets);
    ``properties``: only the changes of these (the properties some trigger is filed under)."""
    et = ev.event_type
    keys: list[tuple[str, str]] = []
    for c in ev.changes:
        if properties is not None and c.property not in properties:
            continue
        keys.append(("prop", c.property))
        if not is_unknown(c.new_value):
            keys.append(("prop_to", _prop_to(c.property, c.new_value)))
    mapped = _EVENT_OF_CHANGE.get(et)
    if mapped is None:
        return keys
    if mapped == EventType.FORM_SUBMITTED:
        keys += [("form", ev.form_id), ("form", "*")]
    elif mapped == EventType.CUSTOM_EVENT:
        keys.append(("custom", ev.event_name))
    elif mapped in (EventType.ASSOCIATION_ADDED, EventType.ASSOCIATION_REMOVED):
        keys += [(mapped.value, ev.associated_object_type), (mapped.value, "*")]
    elif mapped in (EventType.LIST_MEMBERSHIP_ADDED, EventType.LIST_MEMBERSHIP_REMOVED):
        keys.append((mapped.value, ev.list_id))
    else:
        keys.append((mapped.value, ""))
    return keys


def _in_values(wanted: frozenset[str], value: Any) -> bool:
    """'to/from any of' of a property-changed trigger (empty = any value)."""
    return not wanted or (not is_unknown(value) and as_text(value) in wanted)


@dataclass
class CompiledEventTrigger:
    trigger: EventTrigger
    filter: Matcher | None
    event_filter: Matcher | None
    from_set: frozenset[str] = frozenset()
    to_set: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        self.from_set = frozenset(as_text(v) for v in self.trigger.from_values)
        self.to_set = frozenset(as_text(v) for v in self.trigger.to_values)

    def matches(self, ev: ChangeEvent, record: Mapping[str, Any], now: datetime) -> bool:
        """Does ``ev`` fire this trigger (the refinement's counts are checked by the caller)?"""
        t = self.trigger
        et = t.event_type
        if et == EventType.PROPERTY_CHANGED:
            hit = None
            for c in ev.changes:  # (a loop: a generator costs more than the search here)
                if c.property == t.property:
                    hit = c
                    break
            if hit is None or hit.old_value == hit.new_value:
                return False
            if not (
                _in_values(self.to_set, hit.new_value) and _in_values(self.from_set, hit.old_value)
            ):
                return False
        elif _EVENT_OF_CHANGE.get(ev.event_type) != et:
            return False
        elif et == EventType.FORM_SUBMITTED and t.form_id and ev.form_id != t.form_id:
            return False
        elif et == EventType.CUSTOM_EVENT and ev.event_name != t.event_name:
            return False
        elif et in (EventType.ASSOCIATION_ADDED, EventType.ASSOCIATION_REMOVED) and (
            (t.association_object_type and ev.associated_object_type != t.association_object_type)
            or (t.association_label and ev.association_label != t.association_label)
        ):
            return False
        elif et in (EventType.LIST_MEMBERSHIP_ADDED, EventType.LIST_MEMBERSHIP_REMOVED) and (
            ev.list_id != t.list_id
        ):
            return False
        r = t.refinement
        if r is not None:
            if r.window_start and ev.occurred_at < r.window_start:
                return False
            if r.window_end and ev.occurred_at > r.window_end:
                return False
        if self.event_filter is not None and not self.event_filter(ev.properties, now, EMPTY):
            return False
        return self.filter is None or self.filter(record, now, EMPTY)

    @property
    def counted(self) -> bool:
        r = self.trigger.refinement
        return r is not None and (r.min_count > 1 or r.max_count > 0)

    def occurrence_key(self) -> str:
        """What is counted for a refinement ("form:f1", "custom:signup", "prop:stage")."""
        t = self.trigger
        return {
            EventType.FORM_SUBMITTED: f"form:{t.form_id or '*'}",
            EventType.CUSTOM_EVENT: f"custom:{t.event_name}",
            EventType.PROPERTY_CHANGED: f"prop:{t.property}",
        }.get(t.event_type, f"{t.event_type.value}:{t.list_id or t.association_object_type}")


@dataclass
class CompiledWorkflow:
    revision: PublishedRevision
    enabled: bool = True
    criteria: dict[tuple[str, int], tuple[FilterGroup, Matcher]] = field(default_factory=dict)
    events: dict[tuple[str, int], CompiledEventTrigger] = field(default_factory=dict)
    goal: Matcher | None = None
    stay: FilterGroup | None = None
    stay_matcher: Matcher | None = None
    # Workflows whose enrollment facts (``@enrollment:<id>``) this revision's criteria read.
    fact_workflows: frozenset[str] = frozenset()
    # (object type, label) of the associated records its criteria read (``@assoc:<key>``).
    association_refs: frozenset[tuple[str, str]] = frozenset()
    # (object type, label, property): which properties of those records they read (a change
    # of one re-evaluates the records associated to the changed record)
    association_reads: frozenset[tuple[str, str, str]] = frozenset()

    @property
    def tenant_id(self) -> str:
        return self.revision.tenant_id

    @property
    def workflow_id(self) -> str:
        return self.revision.workflow_id

    @property
    def definition(self) -> WorkflowDefinition:
        return self.revision.definition

    @property
    def object_type(self) -> str:
        return self.revision.definition.object_type

    def triggers(self, role: str) -> list[Trigger]:
        e = self.definition.enrollment
        if role == "enroll":
            return e.triggers
        if role == "reenroll":
            return e.reenrollment.triggers
        if role == "unenroll":
            return e.unenrollment_triggers
        return []

    def may_reenroll(self, role: str, index: int) -> bool:
        """Is this trigger a re-enrollment trigger (re-enrollment being on)?"""
        re = self.definition.enrollment.reenrollment
        if not re.enabled:
            return False
        if role == "reenroll":
            return True
        if role != "enroll":
            return False
        trig = self.definition.enrollment.triggers[index]
        if not re.triggers:
            return trig.manual is None and trig.schedule is None
        return trig in re.triggers

    def initial_triggers_match(
        self, ev: ChangeEvent | None, record: Mapping[str, Any], now: datetime
    ) -> bool:
        """Re-enrollment also needs the record to meet the enrollment triggers at that moment."""
        for i, t in enumerate(self.definition.enrollment.triggers):
            if t.criteria is not None:
                if self.criteria[("enroll", i)][1](record, now, EMPTY):
                    return True
            elif t.event is not None and ev is not None:
                if self.events[("enroll", i)].matches(ev, record, now):
                    return True
        return False


def _groups(e: Any) -> list[FilterGroup]:
    """Every criteria group of the enrollment settings (triggers, event filters, goal)."""
    out: list[FilterGroup] = [e.goal] if e.goal is not None else []
    for t in [*e.triggers, *e.reenrollment.triggers, *e.unenrollment_triggers]:
        if t.criteria is not None:
            out.append(t.criteria.filter)
        if t.event is not None:
            if t.event.filter is not None:
                out.append(t.event.filter)
        if t.schedule is not None and t.schedule.filter is not None:
            out.append(t.schedule.filter)
    return out


def _association_reads(group: FilterGroup) -> set[tuple[str, str, str]]:
    out = {
        (f.association.object_type, f.association.label, f.property)
        for f in group.filters
        if f.association
    }
    for g in group.groups:
        out |= _association_reads(g)
    return out


def compile_revision(rev: PublishedRevision, *, enabled: bool = True) -> CompiledWorkflow:
    """Compile every matcher once. Raises InvalidArgument naming a bad filter."""
    cw = CompiledWorkflow(revision=rev, enabled=enabled)
    e = rev.definition.enrollment
    base = "revision.definition.enrollment"
    for role, triggers, path in (
        ("enroll", e.triggers, f"{base}.triggers"),
        ("reenroll", e.reenrollment.triggers, f"{base}.reenrollment.triggers"),
        ("unenroll", e.unenrollment_triggers, f"{base}.unenrollment_triggers"),
    ):
        for i, t in enumerate(triggers):
            p = f"{path}[{i}]"
            if role == "reenroll" and t in e.triggers:
                continue  # fires as the enrollment trigger it duplicates
            if t.criteria is not None:
                cw.criteria[(role, i)] = (
                    t.criteria.filter,
                    compile_group(t.criteria.filter, f"{p}.criteria.filter"),
                )
            elif t.event is not None:
                ev = t.event
                flt = compile_group(ev.filter, f"{p}.event.filter") if ev.filter else None
                evf = None
                if ev.event_filters:
                    evf = compile_group(
                        FilterGroup(filters=ev.event_filters), f"{p}.event.event_filters"
                    )
                cw.events[(role, i)] = CompiledEventTrigger(ev, flt, evf)
    if e.goal is not None and not e.goal.is_empty():
        cw.goal = compile_group(e.goal, f"{base}.goal")
    groups = _groups(rev.definition.enrollment)
    cw.fact_workflows = frozenset(wf for g in groups for wf in g.enrollment_workflows())
    cw.association_reads = frozenset(r for g in groups for r in _association_reads(g))
    cw.association_refs = frozenset((ot, label) for ot, label, _ in cw.association_reads)
    enroll_criteria = [t.criteria.filter for t in e.triggers if t.criteria is not None]
    if e.unenroll_when_criteria_not_met and enroll_criteria:
        cw.stay = FilterGroup(conjunction=Conjunction.OR, groups=enroll_criteria)
        cw.stay_matcher = compile_group(cw.stay)
    return cw
