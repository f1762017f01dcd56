"""Output schemas of actions, and which actions come before a given one.

An action's outputs come from, in order:
1. outputs the action itself declares in its fields (custom code, format data and webhook
   actions let the user name and type them): ``fields["outputs"]`` as a list of
   ``{"name": ..., "type": ...}`` or a ``{name: type}`` mapping;
2. the registry spec's fixed outputs (``ActionSpec.outputs``: a ``{name: type}`` mapping, a
   sequence of names or (name, type) pairs, or a callable of the parsed fields), when the spec
   defines them;
3. well-known fixed outputs by action type (webhook response: status, body, headers).

``None`` means the action has no outputs at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from crmflow.actions.registry import ActionRegistry, UnknownActionType
from crmflow.model.actions import Action
from crmflow.model.workflow import WorkflowDefinition

OutputSchema = dict[str, str]

_WELL_KNOWN: dict[str, OutputSchema] = {
    "webhook": {"status_code": "number", "body": "any", "headers": "object"},
    "send_webhook": {"status_code": "number", "body": "any", "headers": "object"},
    "format_data": {"result": "any"},
}


def _normalise(declared: Any) -> OutputSchema | None:
    if isinstance(declared, Mapping):
        return {str(k): str(v or "any") for k, v in declared.items()}
    if isinstance(declared, Iterable) and not isinstance(declared, str | bytes):
        out: OutputSchema = {}
        for item in declared:
            if isinstance(item, str):
                out[item] = "any"
            elif isinstance(item, Mapping) and item.get("name"):
                out[str(item["name"])] = str(item.get("type") or "any").lower()
            elif isinstance(item, tuple | list) and len(item) == 2:
                out[str(item[0])] = str(item[1])
            else:
                name = getattr(item, "name", None)
                if name:
                    out[str(name)] = str(getattr(item, "type", "any") or "any")
        return out
    return None


def output_schema(action: Action, registry: ActionRegistry) -> OutputSchema | None:
    schema: OutputSchema = {}
    declared = action.fields.get("outputs", action.fields.get("output_fields"))
    if declared is not None:
        schema.update(_normalise(declared) or {})
    try:
        spec = registry.get(action.action_type, action.type_version)
    except UnknownActionType:
        spec = None
    fixed = getattr(spec, "outputs", None) if spec is not None else None
    if callable(fixed):
        try:
            fixed = fixed(spec.parse_fields(action.fields) if spec else action.fields)  # type: ignore[union-attr]
        except Exception:  # an incomplete draft action: no fixed outputs yet
            fixed = None
    if fixed is not None:
        schema.update(_normalise(fixed) or {})
    if not schema and action.action_type in _WELL_KNOWN:
        schema.update(_WELL_KNOWN[action.action_type])
    return schema or None


def predecessors(definition: WorkflowDefinition, action_id: str) -> list[str]:
    """Actions that can run before ``action_id`` in some path (graph order, start first)."""
    parents: dict[str, set[str]] = {}
    for a in definition.actions.values():
        for _, conn in a.edges():
            parents.setdefault(conn.next_action_id, set()).add(a.action_id)
    seen: set[str] = set()
    stack = [action_id]
    while stack:
        for p in parents.get(stack.pop(), ()):
            if p not in seen:
                seen.add(p)
                stack.append(p)
    seen.discard(action_id)
    return [aid for aid in _walk_order(definition) if aid in seen]


def _walk_order(definition: WorkflowDefinition) -> list[str]:
    order: list[str] = []
    seen: set[str] = set()
    stack = [definition.start_action_id] if definition.start_action_id else []
    while stack:
        aid = stack.pop()
        if aid in seen or aid not in definition.actions:
            continue
        seen.add(aid)
        order.append(aid)
        stack.extend(reversed([c.next_action_id for _, c in definition.actions[aid].edges()]))
    order.extend(a for a in definition.actions if a not in seen)
    return order


Predicate = Callable[[str], bool]
