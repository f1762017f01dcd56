"""The data panel: what can be inserted into an action's fields, each with its type."""

from __future__ import annotations

from dataclasses import dataclass, field

from crmflow.actions.registry import ActionRegistry
from crmflow.model.workflow import WorkflowDefinition
from crmflow.records.event_schema import EventDefinitions, event_view, has_event_properties
from datasource_resolver.outputs import output_schema, predecessors
from datasource_resolver.schema_view import Properties, view


@dataclass(frozen=True)
class InsertableField:
    path: str
    label: str
    type: str
    group: str  # enrolled_record | data_source | action_output | event
    source_id: str = ""
    action_id: str = ""
    object_type: str = ""
    options: list[str] = field(default_factory=list)

    @property
    def token(self) -> str:
        return "{{ " + self.path + " }}"


def insertable_fields(
    definition: WorkflowDefinition,
    properties: Properties,
    registry: ActionRegistry,
    *,
    action_id: str = "",
    events: EventDefinitions | None = None,
) -> list[InsertableField]:
    """``events``: definitions of the custom events the triggers name; a defined event's
    properties are listed with their real types, others' guessed from the trigger filters."""
    types = view(properties)
    out: list[InsertableField] = []
    ot = definition.object_type
    rec = types.get(ot)
    if rec is not None:
        for name, typ in sorted(rec.types.items()):
            out.append(
                InsertableField(
                    f"{ot}.{name}",
                    rec.labels.get(name) or name,
                    typ,
                    "enrolled_record",
                    object_type=ot,
                    options=rec.options.get(name, []),
                )
            )
    for src in definition.data_sources:
        tv = types.get(src.object_type)
        if tv is None:
            continue
        label = src.name or src.source_id
        for name, typ in sorted(tv.types.items()):
            out.append(
                InsertableField(
                    f"sources.{src.source_id}.{name}",
                    f"{label}: {tv.labels.get(name) or name}",
                    typ,
                    "data_source",
                    source_id=src.source_id,
                    object_type=src.object_type,
                    options=tv.options.get(name, []),
                )
            )
    if action_id:
        for aid in predecessors(definition, action_id):
            action = definition.actions[aid]
            for name, typ in (output_schema(action, registry) or {}).items():
                out.append(
                    InsertableField(
                        f"actions.{aid}.outputs.{name}",
                        f"{action.label or action.action_type}: {name}",
                        typ,
                        "action_output",
                        action_id=aid,
                    )
                )
    ev = event_view(definition, events)
    if has_event_properties(definition) or ev.types:
        for name, typ in sorted(ev.types.items()):
            out.append(
                InsertableField(
                    f"event.{name}",
                    f"Event: {ev.labels.get(name) or name}",
                    typ,
                    "event",
                    options=ev.options.get(name, []),
                )
            )
    return out
