"""What must change before a draft can be published, per action and for the workflow.

Pure: ``validate(defn, registry=, plan=, properties=)`` takes the CRM property names already
fetched (``load_properties``), so the same function serves the minimap, publish, and the bench.
Action field schemas come from the registry only -- new action types are validated without
touching this module.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from crmflow.actions.control import (
    IF_THEN,
    MAX_IF_THEN_BRANCHES,
    MAX_VALUE_EQUALS_BRANCHES,
    RANDOM_SPLIT,
    VALUE_EQUALS,
)
from crmflow.actions.registry import ActionRegistry, ActionSpec
from crmflow.criteria import OPERATORS
from crmflow.errors import NotFound
from crmflow.model.actions import Action
from crmflow.model.criteria import FilterGroup
from crmflow.model.triggers import EventTrigger, EventType
from crmflow.model.workflow import WorkflowDefinition
from crmflow.records.event_schema import (
    EventDefinitions,
    EventView,
    event_view,
    has_event_properties,
    load_event_definitions,
)
from crmflow.tokens import TemplateError, references_in
from editor_api.loops import loops_without_delay
from editor_api.plans import Plan, trigger_locks

log = logging.getLogger("editor_api.validation")


@dataclass(frozen=True)
class Issue:
    action_id: str
    code: str
    field: str
    message: str


class PropertySource(Protocol):
    """The part of the CRM port validation needs (``RecordStore`` satisfies it)."""

    async def list_properties(self, tenant_id: str, object_type: str) -> list[Any]: ...


async def load_properties(
    source: PropertySource | None, tenant_id: str, defn: WorkflowDefinition
) -> dict[str, set[str] | None] | None:
    """Property names per object type the draft touches; None when no CRM is configured or it
    cannot be reached (the check is then skipped, not failed). ``None`` for a type = unknown
    object type."""
    if source is None:
        return None
    types = {defn.object_type, *(s.object_type for s in defn.data_sources)}
    for f in _filters_with_association(defn):
        types.add(f)
    out: dict[str, set[str] | None] = {}
    for t in sorted(types):
        try:
            out[t] = {p.name for p in await source.list_properties(tenant_id, t)}
        except NotFound:
            out[t] = None
        except Exception as exc:  # the CRM being down must not block editing
            log.warning("property check skipped: %s", exc)
            return None
    return out


async def load_events(
    source: PropertySource | None, tenant_id: str, defn: WorkflowDefinition
) -> EventDefinitions | None:
    """Definitions of the custom events the triggers name; None when no CRM is configured, it
    cannot be reached or does not keep event definitions (``{{ event.x }}`` then unchecked)."""
    if source is None or not hasattr(source, "get_event_definition"):
        return None
    try:
        return await load_event_definitions(source, tenant_id, defn)  # type: ignore[arg-type]
    except Exception as exc:  # the CRM being down must not block editing
        log.warning("event property check skipped: %s", exc)
        return None


@dataclass(frozen=True)
class EnrollmentFilterRef:
    """A "has been enrolled in workflow X" filter of a draft, with its path in the definition."""

    # "enrollment.triggers[0].criteria.filter.enrollment_filters[1]"; in a branch, relative
    # to its action: "branches[0].criteria.enrollment_filters[0]"
    path: str
    workflow_id: str
    action_id: str = ""  # the if/then action of a branch's filter


def _group_refs(group: FilterGroup, path: str, action_id: str) -> Iterator[EnrollmentFilterRef]:
    for i, e in enumerate(group.enrollment_filters):
        yield EnrollmentFilterRef(f"{path}.enrollment_filters[{i}]", e.workflow_id, action_id)
    for i, g in enumerate(group.groups):
        yield from _group_refs(g, f"{path}.groups[{i}]", action_id)


def enrollment_filter_refs(defn: WorkflowDefinition) -> list[EnrollmentFilterRef]:
    """Every workflow-enrollment filter of the draft (triggers, goal, branches)."""
    e = defn.enrollment
    out: list[EnrollmentFilterRef] = []
    for name, triggers in (
        ("triggers", e.triggers),
        ("reenrollment.triggers", e.reenrollment.triggers),
        ("unenrollment_triggers", e.unenrollment_triggers),
    ):
        for i, t in enumerate(triggers):
            base = f"enrollment.{name}[{i}]"
            if t.criteria is not None:
                out += _group_refs(t.criteria.filter, f"{base}.criteria.filter", "")
            if t.event is not None and t.event.filter is not None:
                out += _group_refs(t.event.filter, f"{base}.event.filter", "")
            if t.schedule is not None and t.schedule.filter is not None:
                out += _group_refs(t.schedule.filter, f"{base}.schedule.filter", "")
    if e.goal is not None:
        out += _group_refs(e.goal, "enrollment.goal", "")
    for aid, a in defn.actions.items():
        for i, b in enumerate(a.branches):
            if b.criteria is not None:
                out += _group_refs(b.criteria, f"branches[{i}].criteria", aid)
    return out


def referenced_workflows(defn: WorkflowDefinition) -> set[str]:
    """Workflow ids the draft names (to look up before ``validate``)."""
    out = set(defn.enrollment.unenroll_from_workflow_ids)
    out |= {r.workflow_id for r in enrollment_filter_refs(defn)}
    for a in defn.actions.values():
        for key, value in a.fields.items():
            if key == "workflow_id" or key.endswith(("_workflow_id", "_workflow_ids")):
                out |= {
                    v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str)
                }
    out.discard("")
    return out


def _filters_with_association(defn: WorkflowDefinition) -> set[str]:
    out: set[str] = set()
    for a in defn.actions.values():
        for b in a.branches:
            if b.criteria:
                out |= {f.association.object_type for f in _filters(b.criteria) if f.association}
    return out


def _filters(group: FilterGroup) -> Iterator[Any]:
    yield from group.filters
    for g in group.groups:
        yield from _filters(g)


class _Checker:
    def __init__(
        self,
        defn: WorkflowDefinition,
        registry: ActionRegistry,
        plan: Plan,
        properties: dict[str, set[str] | None] | None,
        known_workflows: Mapping[str, str] | set[str] | None = None,
        events: EventDefinitions | None = None,
    ) -> None:
        self.defn = defn
        # What {{ event.x }} may name (the same view the data panel shows).
        self.events: EventView | None = event_view(defn, events) if events is not None else None
        self.event_definitions = events
        self.registry = registry
        self.plan = plan
        self.properties = properties
        self.sources = {s.source_id: s for s in defn.data_sources}
        self.known_workflows = known_workflows
        self.issues: list[Issue] = []
        self._parents: dict[str, list[str]] | None = None

    def before(self, aid: str) -> set[str]:
        """Actions that can run before ``aid`` (reverse reachability over every edge)."""
        if self._parents is None:
            self._parents = {a: [] for a in self.defn.actions}
            for a in self.defn.actions.values():
                for _, c in a.edges():
                    if c.next_action_id in self._parents:
                        self._parents[c.next_action_id].append(a.action_id)
        seen: set[str] = set()
        stack = list(self._parents.get(aid, []))
        while stack:
            p = stack.pop()
            if p not in seen:
                seen.add(p)
                stack.extend(self._parents[p])
        return seen

    def workflow_refs(self, aid: str, path: str, ids: list[str]) -> None:
        known = self.known_workflows
        if known is None:
            return
        for wid in ids:
            if wid and wid not in known:
                self.add(aid, "unknown_workflow", path, f"workflow {wid!r} does not exist")
            elif wid and isinstance(known, Mapping) and known[wid] != self.defn.object_type:
                # Records only ever enroll in workflows of their own type: a reference across
                # types (enroll in, unenroll from, "has been enrolled in") could never apply.
                self.add(
                    aid,
                    "workflow_object_type_mismatch",
                    path,
                    f"workflow {wid!r} enrolls {known[wid]} records, not "
                    f"{self.defn.object_type} records",
                )

    def add(self, action_id: str, code: str, field: str, message: str) -> None:
        self.issues.append(Issue(action_id, code, field, message))

    def check_property(self, action_id: str, field: str, object_type: str, prop: str) -> None:
        if self.properties is None or not prop:
            return
        known = self.properties.get(object_type)
        if known is None:  # an unknown object type is reported once, by workflow()
            return
        if prop not in known:
            self.add(
                action_id, "unknown_property", field, f"{object_type} has no property {prop!r}"
            )

    def check_group(self, action_id: str, field: str, group: FilterGroup) -> None:
        for i, f in enumerate(_filters(group)):
            if f.operator not in OPERATORS:
                self.add(
                    action_id,
                    "invalid_field",
                    f"{field}.filters[{i}].operator",
                    f"unknown operator {f.operator!r}",
                )
            ot = f.association.object_type if f.association else self.defn.object_type
            self.check_property(action_id, f"{field}.filters[{i}].property", ot, f.property)

    # -- per action -------------------------------------------------------------------
    def action(self, a: Action) -> None:
        aid = a.action_id
        spec: ActionSpec | None = None
        if (a.action_type, a.type_version) in self.registry:
            spec = self.registry.get(a.action_type, a.type_version)
        else:
            self.add(
                aid,
                "unknown_action_type",
                "action_type",
                f"unknown action type {a.action_type!r} v{a.type_version}",
            )
        lock = self.plan.action_lock(a.action_type, self.registry, a.type_version)
        if lock:
            self.add(aid, "locked_by_plan", "action_type", lock + "; upgrade or replace it")
        if a.placeholder:
            self.add(
                aid,
                "placeholder",
                "placeholder",
                "placeholder action: fill in its details before publishing",
            )
        elif spec is not None:
            self.fields(aid, spec, a.fields)
        self.tokens(aid, a.fields)
        self.field_properties(aid, a.fields)
        # Registry convention: ``workflow_id`` / ``*_workflow_id(s)`` fields name workflows.
        for key, value in a.fields.items():
            if key == "workflow_id" or key.endswith(("_workflow_id", "_workflow_ids")):
                ids = value if isinstance(value, list) else [value]
                self.workflow_refs(aid, f"fields.{key}", [v for v in ids if isinstance(v, str)])
        self.branches(a)

    def fields(self, aid: str, spec: ActionSpec, fields: dict[str, Any]) -> BaseModel | None:
        try:
            return spec.fields_model.model_validate(fields)
        except ValidationError as exc:
            for err in exc.errors():
                path = ".".join(["fields", *(str(p) for p in err["loc"])])
                code = "missing_required_field" if err["type"] == "missing" else "invalid_field"
                self.add(aid, code, path, err["msg"])
        return None

    def tokens(self, aid: str, fields: dict[str, Any]) -> None:
        """Personalization tokens, read with the shared parser (``crmflow.tokens``)."""
        for key, value in fields.items():
            path = f"fields.{key}"
            try:
                refs = references_in([value])
            except TemplateError as exc:
                self.add(aid, "invalid_token", path, exc.message)
                continue
            for tok, why in refs.malformed:
                self.add(aid, "invalid_token", path, f"{{{{ {'.'.join(tok.path)} }}}}: {why}")
            for sid, props in sorted(refs.sources.items()):
                src = self.sources.get(sid)
                if src is None:
                    self.add(
                        aid,
                        "deleted_data_source",
                        path,
                        f"uses data source {sid!r}, which no longer exists",
                    )
                    continue
                for p in sorted(props):
                    self.check_property(aid, path, src.object_type, p)
            for ref in sorted(refs.actions):
                if ref not in self.defn.actions:
                    self.add(
                        aid,
                        "deleted_action_output",
                        path,
                        f"uses an output of action {ref!r}, which no longer exists",
                    )
                elif ref not in self.before(aid):
                    self.add(
                        aid,
                        "output_not_upstream",
                        path,
                        f"uses an output of action {ref!r}, which does not run before this one "
                        "on any path",
                    )
            self.event_tokens(aid, path, refs.event)
            for root, props in sorted(refs.objects.items()):
                if root not in ("record", self.defn.object_type):
                    self.add(
                        aid,
                        "invalid_token",
                        path,
                        f"{{{{ {root}.* }}}}: this workflow enrolls "
                        f"{self.defn.object_type} records (use record.<property>)",
                    )
                    continue
                for p in sorted(props):
                    self.check_property(aid, path, self.defn.object_type, p)

    def event_tokens(self, aid: str, path: str, names: set[str]) -> None:
        """``{{ event.x }}`` needs a trigger whose event carries properties (a custom event or a
        form submission); when every such trigger is a defined custom event, x must be one of
        their properties (as the datasource-resolver's ValidateReferences decides)."""
        if not names:
            return
        if not has_event_properties(self.defn):
            listed = ", ".join(sorted(names))
            self.add(
                aid,
                "invalid_token",
                path,
                f"event properties ({listed}) need a custom-event or form-submission trigger",
            )
            return
        if self.events is None or not self.events.closed:
            return
        named = ", ".join(repr(e) for e in self.events.events)
        for p in sorted(names - set(self.events.types)):
            self.add(aid, "unknown_event_property", path, f"event {named} has no property {p!r}")

    def event_filters(self, path: str, event: EventTrigger) -> None:
        """A defined custom event's filters may only name its properties (an undefined event,
        or no CRM answer, leaves them unchecked)."""
        if self.event_definitions is None or event.event_type != EventType.CUSTOM_EVENT:
            return
        definition = self.event_definitions.get(event.event_name)
        if definition is None:
            return
        known = {p.name for p in definition.properties}
        for j, f in enumerate(event.event_filters):
            if f.property not in known:
                self.add(
                    "",
                    "unknown_event_property",
                    f"{path}.event_filters[{j}].property",
                    f"event {event.event_name!r} has no property {f.property!r}",
                )

    def field_properties(self, aid: str, fields: dict[str, Any]) -> None:
        """Fields named ``property`` / ``*_property`` name CRM properties (registry convention);
        ``target_source`` moves them to a data source's object type."""
        target = fields.get("target_source")
        obj = self.defn.object_type
        if isinstance(target, str) and target:
            if target not in self.sources:
                self.add(
                    aid,
                    "deleted_data_source",
                    "fields.target_source",
                    f"updates data source {target!r}, which no longer exists",
                )
                return
            obj = self.sources[target].object_type
        for key, value in fields.items():
            if isinstance(value, str) and (key == "property" or key.endswith("_property")):
                ot = self.defn.object_type if key != "property" else obj
                self.check_property(aid, f"fields.{key}", ot, value)

    def branches(self, a: Action) -> None:
        aid, n = a.action_id, len(a.branches)
        if a.action_type == IF_THEN:
            if n == 0:
                self.add(aid, "empty_branches", "branches", "an if/then branch needs a branch")
            if n > MAX_IF_THEN_BRANCHES:
                self.add(
                    aid,
                    "branch_limit",
                    "branches",
                    f"{n} branches; if/then allows at most {MAX_IF_THEN_BRANCHES}",
                )
            for i, b in enumerate(a.branches):
                if b.criteria is None or b.criteria.is_empty():
                    self.add(
                        aid, "invalid_field", f"branches[{i}].criteria", "branch needs criteria"
                    )
                else:
                    self.check_group(aid, f"branches[{i}].criteria", b.criteria)
        elif a.action_type == VALUE_EQUALS:
            if n == 0:
                self.add(aid, "empty_branches", "branches", "a value-equals branch needs a branch")
            if n > MAX_VALUE_EQUALS_BRANCHES:
                self.add(
                    aid,
                    "branch_limit",
                    "branches",
                    f"{n} branches; value equals allows at most {MAX_VALUE_EQUALS_BRANCHES}",
                )
            for i, b in enumerate(a.branches):
                if not b.values:
                    self.add(aid, "invalid_field", f"branches[{i}].values", "branch needs values")
        elif a.action_type == RANDOM_SPLIT:
            total = sum(b.percentage for b in a.branches)
            if n < 2 or total != 100:
                self.add(
                    aid,
                    "random_split_sum",
                    "branches",
                    f"a random split needs 2+ paths summing to 100% (has {n}, {total}%)",
                )

    # -- whole graph -----------------------------------------------------------------
    def graph(self) -> None:
        d = self.defn
        if not d.actions:
            self.add("", "no_actions", "actions", "add at least one action")
            return
        seen: set[str] = set()
        stack = [d.start_action_id]
        while stack:
            aid = stack.pop()
            if aid in seen or aid not in d.actions:
                continue
            seen.add(aid)
            stack.extend(c.next_action_id for _, c in d.actions[aid].edges())
        for aid in sorted(set(d.actions) - seen):
            self.add(aid, "unreachable_action", "", "no path from the start reaches this action")
        for aid in loops_without_delay(self.defn):
            self.add(
                aid,
                "goto_loop_without_delay",
                "connection",
                "this go-to closes a loop with no delay in it; add a delay to the loop",
            )

    def workflow(self) -> None:
        d = self.defn
        self.workflow_refs(
            "", "enrollment.unenroll_from_workflow_ids", d.enrollment.unenroll_from_workflow_ids
        )
        if self.properties is not None:
            if self.properties.get(d.object_type) is None:
                self.add(
                    "",
                    "unknown_object_type",
                    "object_type",
                    f"object type {d.object_type!r} does not exist in the CRM",
                )
            for i, s in enumerate(d.data_sources):
                if self.properties.get(s.object_type) is None:
                    self.add(
                        "",
                        "unknown_object_type",
                        f"data_sources[{i}].object_type",
                        f"object type {s.object_type!r} does not exist in the CRM",
                    )
        for ref in enrollment_filter_refs(d):
            self.workflow_refs(ref.action_id, f"{ref.path}.workflow_id", [ref.workflow_id])
        for path, why in trigger_locks(self.plan, d.enrollment):
            self.add("", "trigger_locked_by_plan", path, why)
        for i, t in enumerate(d.enrollment.triggers):
            base = f"enrollment.triggers[{i}]"
            if t.criteria:
                self.check_group("", f"{base}.criteria.filter", t.criteria.filter)
            if t.event and t.event.property:
                self.check_property("", f"{base}.event.property", d.object_type, t.event.property)
            if t.event and t.event.filter:
                self.check_group("", f"{base}.event.filter", t.event.filter)
            if t.event and t.event.event_filters:
                self.event_filters(f"{base}.event", t.event)
            if t.schedule and t.schedule.date_property:
                self.check_property(
                    "", f"{base}.schedule.date_property", d.object_type, t.schedule.date_property
                )
            if t.schedule and t.schedule.filter:
                self.check_group("", f"{base}.schedule.filter", t.schedule.filter)
        if d.enrollment.goal:
            self.check_group("", "enrollment.goal", d.enrollment.goal)
        for i, s in enumerate(d.data_sources):
            for key in ("property",):
                self.check_property("", f"data_sources[{i}].{key}", s.object_type, getattr(s, key))
            self.check_property(
                "", f"data_sources[{i}].enrolled_property", d.object_type, s.enrolled_property
            )


def validate(
    defn: WorkflowDefinition,
    *,
    registry: ActionRegistry,
    plan: Plan,
    properties: dict[str, set[str] | None] | None = None,
    known_workflows: Mapping[str, str] | set[str] | None = None,
    events: EventDefinitions | None = None,
) -> list[Issue]:
    """``known_workflows``: the referenced workflows that exist, ideally with the object type
    each enrolls (a set checks existence only; None skips the check). ``events``: definitions
    of the custom events the triggers name (``load_events``; None skips that check)."""
    c = _Checker(defn, registry, plan, properties, known_workflows, events)
    c.workflow()
    for a in defn.actions.values():
        c.action(a)
    c.graph()
    return c.issues
