"""Validating a definition's references: data sources and every token in every action field.

Unknown sources, properties or action outputs are collected (all of them, not just the first)
and raised as one ``InvalidArgument`` whose violations name each offending field, e.g.
``actions.a2.fields.body: unknown data source 'compny' (known: company, deal)``.
"""

from __future__ import annotations

from crmflow.actions.registry import ActionRegistry
from crmflow.errors import ErrorList
from crmflow.model.workflow import WorkflowDefinition
from crmflow.records.event_schema import (
    EventDefinitions,
    EventView,
    event_view,
    has_event_properties,
)
from crmflow.records.sources import TRANSFORMS
from crmflow.tokens import TemplateError, references_in
from crmflow.tokens.references import References
from datasource_resolver.outputs import output_schema, predecessors
from datasource_resolver.schema_view import Properties, TypeView, view


def _known(names: object) -> str:
    items = sorted(names)  # type: ignore[call-overload]
    shown = ", ".join(items[:15]) + (", ..." if len(items) > 15 else "")
    return f" (known: {shown})" if items else ""


def _check_sources(
    definition: WorkflowDefinition, types: dict[str, TypeView], errors: ErrorList
) -> None:
    enrolled = types.get(definition.object_type)
    for i, src in enumerate(definition.data_sources):
        path = f"data_sources[{i}]"
        tv = types.get(src.object_type)
        if tv is None:
            errors.add(f"{path}.object_type", f"unknown object type {src.object_type!r}")
            continue
        if src.property and src.property not in tv.types:
            errors.add(
                f"{path}.property",
                f"unknown property {src.property!r} of {src.object_type}{_known(tv.types)}",
            )
        if (
            src.enrolled_property
            and enrolled is not None
            and src.enrolled_property not in enrolled.types
        ):
            errors.add(
                f"{path}.enrolled_property",
                f"unknown property {src.enrolled_property!r} of {definition.object_type}",
            )
        if src.transform and src.transform not in TRANSFORMS:
            errors.add(f"{path}.transform", f"unknown transform {src.transform!r}")


def _check_refs(
    definition: WorkflowDefinition,
    action_id: str,
    field: str,
    refs: References,
    types: dict[str, TypeView],
    registry: ActionRegistry,
    errors: ErrorList,
    events: EventView,
) -> None:
    ot = definition.object_type
    for tok, reason in refs.malformed:
        errors.add(field, f"{tok.source.strip()}: {reason}")
    enrolled = types.get(ot)
    for root, props in sorted(refs.objects.items()):
        if root not in ("record", ot):
            errors.add(
                field,
                f"unknown token root {root!r}: use record, {ot}, sources, actions or event",
            )
            continue
        for p in sorted(props):
            if enrolled is not None and p not in enrolled.types:
                errors.add(field, f"unknown property {p!r} of {ot}")
    sources = {s.source_id: s for s in definition.data_sources}
    for sid, props in sorted(refs.sources.items()):
        src = sources.get(sid)
        if src is None:
            errors.add(field, f"unknown data source {sid!r}{_known(sources)}")
            continue
        tv = types.get(src.object_type)
        for p in sorted(props):
            if tv is not None and p not in tv.types:
                errors.add(
                    field, f"unknown property {p!r} of data source {sid!r} ({src.object_type})"
                )
    earlier = set(predecessors(definition, action_id))
    for aid, names in sorted(refs.actions.items()):
        if aid not in definition.actions:
            errors.add(field, f"unknown action {aid!r}")
            continue
        if aid not in earlier:
            errors.add(field, f"action {aid!r} does not run before {action_id!r}")
            continue
        schema = output_schema(definition.actions[aid], registry)
        for n in sorted(names):
            if schema is None:
                errors.add(field, f"action {aid!r} has no outputs (asked for {n!r})")
            elif n not in schema:
                errors.add(field, f"unknown output {n!r} of action {aid!r}{_known(schema)}")
    unknown_event = refs.event - set(events.types)
    if unknown_event and not has_event_properties(definition):
        listed = ", ".join(sorted(unknown_event))
        errors.add(
            field,
            f"event properties ({listed}) need a custom-event or form-submission trigger",
        )
    elif unknown_event and events.closed:
        # Every triggering event is defined: a property none of them defines never arrives.
        named = ", ".join(repr(e) for e in events.events)
        for p in sorted(unknown_event):
            errors.add(field, f"unknown property {p!r} of event {named}{_known(events.types)}")


def reference_errors(
    definition: WorkflowDefinition,
    properties: Properties,
    registry: ActionRegistry,
    events: EventDefinitions | None = None,
) -> ErrorList:
    """Every reference problem of the definition (empty when all resolve). ``events``: the
    definitions of the custom events its triggers name (``{{ event.<x> }}`` is checked against
    them when every triggering event has one)."""
    types = view(properties)
    ev = event_view(definition, events)
    errors = ErrorList()
    _check_sources(definition, types, errors)
    for aid, action in definition.actions.items():
        for name, value in action.fields.items():
            field = f"actions.{aid}.fields.{name}"
            try:
                refs = references_in([value])
            except TemplateError as exc:
                errors.add(field, exc.reason + (f" at {exc.position}" if exc.position >= 0 else ""))
                continue
            _check_refs(definition, aid, field, refs, types, registry, errors, ev)
    return errors


def validate_references(
    definition: WorkflowDefinition,
    properties: Properties,
    registry: ActionRegistry | None = None,
    events: EventDefinitions | None = None,
) -> int:
    """Raise INVALID_ARGUMENT naming every unknown source/property/output; else the count of
    token references checked. ``properties`` maps object type -> its property definitions
    (or names); object types absent from it are unknown."""
    from crmflow.actions.catalogue import default_registry

    reg = registry or default_registry()
    errors = reference_errors(definition, properties, reg, events)
    errors.raise_if_any("workflow references unknown data")
    count = 0
    for action in definition.actions.values():
        count += len(references_in(list(action.fields.values())).tokens)
    return count
