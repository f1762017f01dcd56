"""Deterministic names and descriptions for workflows published without one.

HubSpot asks an AI; we derive them from the triggers and actions so the same draft always gets
the same text (reviewable, testable, no external call at publish time).
"""

from __future__ import annotations

from crmflow.actions.registry import ActionRegistry
from crmflow.model.triggers import Trigger
from crmflow.model.workflow import WorkflowDefinition


def _object_label(object_type: str) -> str:
    return object_type.replace("_", " ").strip() or "record"


def describe_trigger(t: Trigger) -> str:
    if t.manual:
        return "enrolled manually"
    if t.schedule:
        s = t.schedule
        freq = s.frequency.value.removeprefix("SCHEDULE_FREQUENCY_").lower().replace("_", " ")
        if s.date_property:
            return f"scheduled on {s.date_property} ({s.offset_days:+d} days)"
        return f"scheduled {freq}"
    if t.event:
        kind = t.event.event_type.value.removeprefix("EVENT_TYPE_").lower().replace("_", " ")
        detail = t.event.property or t.event.event_name or t.event.form_id or t.event.list_id
        return f"when {kind}" + (f" ({detail})" if detail else "")
    assert t.criteria is not None
    props = sorted(t.criteria.filter.properties())
    return "when criteria are met" + (f" on {', '.join(props[:3])}" if props else "")


def _walk(defn: WorkflowDefinition) -> list[str]:
    """Action ids in path order (depth first from the start), then any unreachable ones."""
    order: list[str] = []
    seen: set[str] = set()
    stack = [defn.start_action_id] if defn.start_action_id else []
    while stack:
        aid = stack.pop()
        if aid in seen or aid not in defn.actions:
            continue
        seen.add(aid)
        order.append(aid)
        edges = defn.actions[aid].edges()
        stack.extend(c.next_action_id for _, c in reversed(edges))
    return order + sorted(set(defn.actions) - seen)


def generate(defn: WorkflowDefinition, registry: ActionRegistry) -> tuple[str, str]:
    obj = _object_label(defn.object_type)
    triggers = [describe_trigger(t) for t in defn.enrollment.triggers] or ["enrolled manually"]
    labels: list[str] = []
    for aid in _walk(defn):
        a = defn.actions[aid]
        if a.label:
            labels.append(a.label)
        elif (a.action_type, a.type_version) in registry:
            labels.append(registry.get(a.action_type, a.type_version).label)
        else:
            labels.append(a.action_type)
    first = labels[0] if labels else "no actions"
    name = f"{obj.capitalize()} workflow: {first} {triggers[0]}"[:200]
    steps = ", then ".join(labels[:5]) + (f" and {len(labels) - 5} more" if len(labels) > 5 else "")
    description = f"Enrolls {obj} records {' or '.join(triggers)}. " + (
        f"Actions: {steps}." if labels else "It has no actions yet."
    )
    return name, description
