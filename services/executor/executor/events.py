"""Does a record event satisfy a 'delay until event' condition? (pure; used in the workflow)."""

from __future__ import annotations

from datetime import datetime

from crmflow.criteria import evaluate
from crmflow.criteria.values import equal
from crmflow.model.criteria import FilterGroup
from crmflow.model.records import ChangeEvent, ChangeEventType
from crmflow.model.triggers import EventTrigger, EventType

_EVENT_TYPES: dict[EventType, ChangeEventType] = {
    EventType.RECORD_CREATED: ChangeEventType.RECORD_CREATED,
    EventType.PROPERTY_CHANGED: ChangeEventType.RECORD_UPDATED,
    EventType.RECORD_DELETED: ChangeEventType.RECORD_DELETED,
    EventType.FORM_SUBMITTED: ChangeEventType.FORM_SUBMITTED,
    EventType.CUSTOM_EVENT: ChangeEventType.CUSTOM_EVENT,
    EventType.ASSOCIATION_ADDED: ChangeEventType.ASSOCIATION_ADDED,
    EventType.ASSOCIATION_REMOVED: ChangeEventType.ASSOCIATION_REMOVED,
    EventType.LIST_MEMBERSHIP_ADDED: ChangeEventType.LIST_MEMBERSHIP_ADDED,
    EventType.LIST_MEMBERSHIP_REMOVED: ChangeEventType.LIST_MEMBERSHIP_REMOVED,
}


def _in(values: list[str], value: object) -> bool:
    return not values or any(equal(value, v) for v in values)


def event_matches(trigger: EventTrigger, event: ChangeEvent, *, now: datetime) -> bool:
    if _EVENT_TYPES[trigger.event_type] != event.event_type:
        return False
    t = trigger.event_type
    if t == EventType.PROPERTY_CHANGED:
        change = next((c for c in event.changes if c.property == trigger.property), None)
        if change is None:
            return False
        if not (
            _in(trigger.from_values, change.old_value) and _in(trigger.to_values, change.new_value)
        ):
            return False
    if t == EventType.FORM_SUBMITTED and trigger.form_id and trigger.form_id != event.form_id:
        return False
    if t == EventType.CUSTOM_EVENT and trigger.event_name != event.event_name:
        return False
    if t in (EventType.LIST_MEMBERSHIP_ADDED, EventType.LIST_MEMBERSHIP_REMOVED) and (
        trigger.list_id != event.list_id
    ):
        return False
    if t in (EventType.ASSOCIATION_ADDED, EventType.ASSOCIATION_REMOVED):
        if trigger.association_object_type and (
            trigger.association_object_type != event.associated_object_type
        ):
            return False
        if trigger.association_label and trigger.association_label != event.association_label:
            return False
    if trigger.event_filters:
        group = FilterGroup(filters=list(trigger.event_filters))
        if not evaluate(group, event.properties, now=now).matched:
            return False
    return True
