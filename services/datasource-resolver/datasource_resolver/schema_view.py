"""The tenant schema a definition is checked against: property definitions per object type."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from crmflow.errors import NotFound
from crmflow.model.triggers import EventType, Trigger
from crmflow.model.workflow import WorkflowDefinition
from crmflow.records.port import PropertyDefinition, RecordStore

# Per object type: property definitions, or just names (types then read as "any").
Properties = Mapping[str, Collection[PropertyDefinition] | Collection[str]]

# Event types whose occurrence carries its own properties ({{ event.<prop> }}).
EVENT_WITH_PROPERTIES = (EventType.CUSTOM_EVENT, EventType.FORM_SUBMITTED)


@dataclass
class TypeView:
    """Properties of one object type, by name, with their types and options."""

    types: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, list[str]] = field(default_factory=dict)


def view(properties: Properties) -> dict[str, TypeView]:
    out: dict[str, TypeView] = {}
    for object_type, props in properties.items():
        tv = TypeView()
        for p in props:
            if isinstance(p, str):
                tv.types[p] = "any"
            else:
                tv.types[p.name] = str(p.type)
                tv.labels[p.name] = p.label
                tv.options[p.name] = list(p.options)
        out[object_type] = tv
    return out


def object_types_of(definition: WorkflowDefinition) -> set[str]:
    return {definition.object_type, *(s.object_type for s in definition.data_sources)}


async def load_properties(
    store: RecordStore, tenant_id: str, definition: WorkflowDefinition
) -> dict[str, list[PropertyDefinition]]:
    """Property definitions of every object type the definition reads (unknown types omitted)."""
    out: dict[str, list[PropertyDefinition]] = {}
    for ot in sorted(object_types_of(definition)):
        try:
            out[ot] = await store.list_properties(tenant_id, ot)
        except NotFound:
            continue
    return out


def event_triggers(definition: WorkflowDefinition) -> list[Trigger]:
    return [t for t in definition.enrollment.triggers if t.event is not None]


def event_property_names(definition: WorkflowDefinition) -> dict[str, str]:
    """Event properties known from the triggers (the names their filters read), with the type
    their operand suggests (events carry no schema of their own)."""
    names: dict[str, str] = {}
    for t in event_triggers(definition):
        assert t.event is not None
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
