"""What ``{{ event.<x> }}`` may name in a workflow: the definitions of the custom events its
triggers name, plus names inferred from trigger filters for events without one.

Shared by the datasource-resolver (data panel, ValidateReferences) and editor-api (draft
validation), so both accept and refuse the same event tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from crmflow.errors import NotFound
from crmflow.model.triggers import EventType, Trigger
from crmflow.model.workflow import WorkflowDefinition
from crmflow.records.port import EventDefinition

# Custom event name -> its definition (events without one are absent).
EventDefinitions = Mapping[str, EventDefinition]

# Event types whose occurrence carries its own properties ({{ event.<prop> }}).
EVENT_WITH_PROPERTIES = (EventType.CUSTOM_EVENT, EventType.FORM_SUBMITTED)


class EventDefinitionSource(Protocol):
    """The part of the CRM port this needs (``RecordStore`` satisfies it)."""

    async def get_event_definition(self, tenant_id: str, name: str) -> EventDefinition: ...


def event_triggers(definition: WorkflowDefinition) -> list[Trigger]:
    return [t for t in definition.enrollment.triggers if t.event is not None]


def custom_event_names(definition: WorkflowDefinition) -> set[str]:
    return {
        t.event.event_name
        for t in event_triggers(definition)
        if t.event is not None and t.event.event_type == EventType.CUSTOM_EVENT
    }


async def load_event_definitions(
    store: EventDefinitionSource, tenant_id: str, definition: WorkflowDefinition
) -> dict[str, EventDefinition]:
    """Definitions of the custom events the triggers name (undefined events omitted)."""
    out: dict[str, EventDefinition] = {}
    for name in sorted(custom_event_names(definition)):
        try:
            out[name] = await store.get_event_definition(tenant_id, name)
        except NotFound:
            continue
    return out


def _defined(trigger: Trigger, events: EventDefinitions) -> EventDefinition | None:
    ev = trigger.event
    if ev is None or ev.event_type != EventType.CUSTOM_EVENT:
        return None
    return events.get(ev.event_name)


@dataclass
class EventView:
    """What ``{{ event.<x> }}`` may name: defined events' properties with their real types,
    plus names inferred from the filters of triggers whose event has no definition.

    ``closed``: every trigger whose event carries properties is a defined custom event, so a
    name outside ``types`` is unknown (an undefined event or a form may carry anything).
    """

    types: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, list[str]] = field(default_factory=dict)
    closed: bool = False
    events: list[str] = field(default_factory=list)  # the defined events, by name


def event_view(definition: WorkflowDefinition, events: EventDefinitions | None) -> EventView:
    events = events or {}
    ev = EventView()
    with_props = [
        t
        for t in event_triggers(definition)
        if t.event is not None and t.event.event_type in EVENT_WITH_PROPERTIES
    ]
    defined = {d.name: d for t in with_props if (d := _defined(t, events)) is not None}
    for d in (defined[n] for n in sorted(defined)):
        for p in d.properties:
            typ = str(p.type)
            if ev.types.get(p.name, typ) != typ:
                typ = "any"  # two triggering events disagree: the value's type is not known
            ev.types[p.name] = typ
            ev.labels.setdefault(p.name, p.label)
            ev.options.setdefault(p.name, list(p.options))
    inferred = event_property_names(definition, events)
    for name, typ in inferred.items():
        ev.types.setdefault(name, typ)
    ev.closed = bool(with_props) and all(_defined(t, events) is not None for t in with_props)
    ev.events = sorted(defined)
    return ev


def event_property_names(
    definition: WorkflowDefinition, events: EventDefinitions | None = None
) -> dict[str, str]:
    """Event properties known from the filters of triggers whose event has no definition, with
    the type their operand suggests (such events carry no schema of their own)."""
    names: dict[str, str] = {}
    for t in event_triggers(definition):
        assert t.event is not None
        if _defined(t, events or {}) is not None:
            continue
        for f in t.event.event_filters:
            names.setdefault(
                f.property, _operand_type(f.value if f.value is not None else f.values)
            )
    return names


def _operand_type(value: object) -> str:
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "any"


def has_event_properties(definition: WorkflowDefinition) -> bool:
    """Whether tokens may read ``event.*``: some trigger is a custom event or form submission.

    Such events carry free-form properties, so any ``event.<name>`` is accepted for them.
    """
    return any(
        t.event and t.event.event_type in EVENT_WITH_PROPERTIES for t in event_triggers(definition)
    )
