"""The tenant schema a definition is checked against: property definitions per object type, and
the definitions of the custom events its triggers name (``crmflow.records.event_schema``)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from crmflow.errors import NotFound
from crmflow.model.workflow import WorkflowDefinition
from crmflow.records.port import PropertyDefinition, RecordStore

# Per object type: property definitions, or just names (types then read as "any").
Properties = Mapping[str, Collection[PropertyDefinition] | Collection[str]]


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
