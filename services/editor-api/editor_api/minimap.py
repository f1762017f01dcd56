"""The minimap: nodes with drawing positions, edges with branch labels.

Layout is a left-aligned tree on STANDARD edges: a node sits in its first child's column, each
further branch opens a new column to the right, and y is the depth. Unreachable actions are laid
out as extra trees after the main one. GOTO edges are drawn but do not shape the layout.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from crmflow.actions.registry import ActionRegistry
from crmflow.model.actions import Action, EdgeType
from crmflow.model.workflow import WorkflowDefinition
from editor_api.graph import DEFAULT, NEXT, slots_of


@dataclass
class Node:
    action_id: str
    action_type: str
    label: str
    summary: str
    x: int
    y: int
    placeholder: bool
    comment_count: int
    has_issues: bool = False


@dataclass(frozen=True)
class Edge:
    from_action_id: str
    to_action_id: str
    label: str
    branch_id: str
    edge_type: EdgeType


def summary(a: Action, registry: ActionRegistry) -> str:
    if (a.action_type, a.type_version) not in registry:
        return a.action_type
    spec = registry.get(a.action_type, a.type_version)
    try:
        return spec.summary(spec.fields_model.model_validate(a.fields)) or spec.label
    except (ValidationError, TypeError, ValueError, AttributeError):
        return spec.label


def edges(defn: WorkflowDefinition) -> list[Edge]:
    out = []
    for a in defn.actions.values():
        labels = {b.branch_id: b.label or b.branch_id for b in a.branches}
        for edge, conn in slots_of(a):
            if conn is None:
                continue
            label = {NEXT: "next", DEFAULT: "default"}.get(edge) or labels.get(edge, edge)
            out.append(
                Edge(
                    a.action_id,
                    conn.next_action_id,
                    label,
                    "" if edge == NEXT else edge,
                    conn.edge_type,
                )
            )
    return out


def layout(defn: WorkflowDefinition, registry: ActionRegistry) -> list[Node]:
    children: dict[str, list[str]] = {a: [] for a in defn.actions}
    has_parent: set[str] = set()
    for a in defn.actions.values():
        for _, conn in slots_of(a):
            if conn and conn.edge_type == EdgeType.STANDARD and conn.next_action_id in children:
                children[a.action_id].append(conn.next_action_id)
                has_parent.add(conn.next_action_id)
    roots = [defn.start_action_id] if defn.start_action_id in defn.actions else []
    roots += sorted(a for a in defn.actions if a not in has_parent and a not in roots)
    nodes: dict[str, Node] = {}
    max_col = -1
    for root in roots:
        # (action id, depth, inherit column from parent, parent's column)
        stack: list[tuple[str, int, bool, int]] = [(root, 0, False, 0)]
        while stack:
            aid, depth, first, parent_x = stack.pop()
            if aid in nodes:
                continue
            x = parent_x if first else max_col + 1
            max_col = max(max_col, x)
            a = defn.actions[aid]
            nodes[aid] = Node(
                aid,
                a.action_type,
                a.label,
                summary(a, registry),
                x,
                depth,
                a.placeholder,
                len(a.comments),
            )
            kids = children[aid]
            for i in range(len(kids) - 1, -1, -1):
                stack.append((kids[i], depth + 1, i == 0, x))
    return list(nodes.values())
