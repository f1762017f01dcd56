"""Custom event definitions: checking a definition, and an occurrence's properties against it.

Shared by every place that holds or reads definitions (the embedded store, the data panel,
enrollment's ingest), so "what a defined event may carry" is decided once: a property the
definition lacks is refused, a value must fit its property's type (the record property rules of
``crmflow.records.schema``), a required property must be present.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crmflow.errors import ErrorList, FailedPrecondition, InvalidArgument
from crmflow.records.port import EventDefinition
from crmflow.records.schema import check_name, check_property_definition, normalise_value

# Bound on one definition (HubSpot allows 50 custom properties per event; some headroom).
MAX_EVENT_PROPERTIES = 100


def check_definition(d: EventDefinition, field: str = "definition") -> EventDefinition:
    """The definition with its properties tied to its object type; InvalidArgument naming
    ``field.<x>`` for a bad name, object type name, duplicate or malformed property."""
    check_name(d.name, f"{field}.name")
    check_name(d.object_type, f"{field}.object_type")
    if len(d.properties) > MAX_EVENT_PROPERTIES:
        raise InvalidArgument.field(
            f"{field}.properties", f"at most {MAX_EVENT_PROPERTIES} properties per event"
        )
    seen: set[str] = set()
    props = []
    for i, p in enumerate(d.properties):
        path = f"{field}.properties[{i}]"
        p = p.model_copy(update={"object_type": d.object_type})
        check_property_definition(p, path)
        if p.name in seen:
            raise InvalidArgument.field(f"{path}.name", f"property {p.name!r} is defined twice")
        if p.read_only:
            # An event's properties are whatever its sender sends; nothing computes them.
            raise InvalidArgument.field(f"{path}.read_only", "event properties can't be read-only")
        seen.add(p.name)
        props.append(p)
    return d.model_copy(update={"properties": props})


def check_update(old: EventDefinition, new: EventDefinition) -> None:
    """Occurrences already recorded carry the old shape: the object type and the type of a
    kept property never change (a property may be added, removed or relabelled)."""
    if old.object_type != new.object_type:
        raise FailedPrecondition(
            f"event {old.name!r} happens to {old.object_type!r}; its object type can't change"
        )
    before = {p.name: p for p in old.properties}
    for p in new.properties:
        was = before.get(p.name)
        if was is not None and was.type != p.type:
            raise FailedPrecondition(
                f"property {p.name!r} of event {old.name!r} is a {was.type.value}; "
                "its type can't change"
            )


def validate_event_properties(
    d: EventDefinition,
    properties: Mapping[str, Any],
    *,
    field: str = "event.properties",
    errors: ErrorList | None = None,
) -> dict[str, Any]:
    """The occurrence's properties normalised as record values are; every unknown property,
    value of the wrong type or missing required property is a violation naming
    ``field.<name>`` (raised as InvalidArgument unless ``errors`` collects them)."""
    own = errors is None
    errs = errors if errors is not None else ErrorList()
    defs = {p.name: p for p in d.properties}
    out: dict[str, Any] = {}
    for name, value in properties.items():
        prop = defs.get(name)
        if prop is None:
            errs.add(f"{field}.{name}", f"unknown property {name!r} of event {d.name!r}")
            continue
        try:
            out[name] = normalise_value(prop, value)
        except ValueError as exc:
            errs.add(f"{field}.{name}", f"{exc} ({prop.type.value} property)")
    for prop in d.properties:
        if prop.required and out.get(prop.name) is None and prop.name not in _named(errs, field):
            errs.add(f"{field}.{prop.name}", f"{prop.name!r} is required by event {d.name!r}")
    if own:
        errs.raise_if_any(f"properties don't match event definition {d.name!r}")
    return out


def _named(errs: ErrorList, field: str) -> set[str]:
    prefix = f"{field}."
    return {v.field[len(prefix) :] for v in errs.violations if v.field.startswith(prefix)}
