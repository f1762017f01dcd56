"""Pure edits of the action graph: insert, detach, delete, move, clone.

The graph is a tree on STANDARD edges (each action has at most one standard parent; the start
action has none) plus GOTO edges that jump anywhere. A *slot* is one outgoing edge of an
action -- ``next``, a branch id, or ``default`` -- or the workflow's start. Every edit here keeps
the tree invariant, so ``check_structure`` only has to run on whole documents from clients.
Functions mutate the definition in place; the caller works on a fresh copy per request.
"""

from __future__ import annotations

import uuid
from collections.abc import Container
from dataclasses import dataclass

from crmflow.actions.control import IF_THEN, RANDOM_SPLIT, VALUE_EQUALS
from crmflow.errors import ErrorList, InvalidArgument, NotFound
from crmflow.model.actions import Action, Connection, EdgeType
from crmflow.model.workflow import WorkflowDefinition

# Branch actions end a path: what follows them hangs off their branches and default path.
BRANCH_TYPES = frozenset({IF_THEN, VALUE_EQUALS, RANDOM_SPLIT})
DEFAULT = "default"  # the default (or timeout) path of a branch action, as a slot / branch id
NEXT = "next"
START = "start"


@dataclass(frozen=True)
class Slot:
    parent: str  # "" = the workflow start
    edge: str  # NEXT | DEFAULT | a branch id | START


def is_branching(action: Action) -> bool:
    return action.action_type in BRANCH_TYPES


def new_id(prefix: str, taken: Container[str]) -> str:
    while True:
        candidate = f"{prefix}{uuid.uuid4().hex[:8]}"
        if candidate not in taken:
            return candidate


def get_action(defn: WorkflowDefinition, action_id: str) -> Action:
    try:
        return defn.actions[action_id]
    except KeyError:
        raise NotFound("action", action_id) from None


def slot_for(
    defn: WorkflowDefinition,
    *,
    after_action_id: str = "",
    parent_action_id: str = "",
    branch_id: str = "",
    field: str = "position",
) -> Slot:
    """Resolve a client's position to a slot, naming the bad field when it does not exist."""
    if after_action_id and parent_action_id:
        raise InvalidArgument.field(field, "set after_action_id or parent_action_id, not both")
    if after_action_id:
        a = defn.actions.get(after_action_id)
        if a is None:
            raise InvalidArgument.field(f"{field}.after_action_id", "no such action")
        if is_branching(a):
            raise InvalidArgument.field(
                f"{field}.after_action_id",
                f"{after_action_id} is a branch action; add on one of its branches",
            )
        return Slot(after_action_id, NEXT)
    if parent_action_id:
        p = defn.actions.get(parent_action_id)
        if p is None:
            raise InvalidArgument.field(f"{field}.parent_action_id", "no such action")
        if branch_id == DEFAULT:
            if not is_branching(p):
                raise InvalidArgument.field(
                    f"{field}.branch_id", "only branch actions have a default path"
                )
            return Slot(parent_action_id, DEFAULT)
        if not any(b.branch_id == branch_id for b in p.branches):
            raise InvalidArgument.field(
                f"{field}.branch_id", f"{parent_action_id} has no branch {branch_id!r}"
            )
        return Slot(parent_action_id, branch_id)
    if branch_id:
        raise InvalidArgument.field(f"{field}.parent_action_id", "required with branch_id")
    return Slot("", START)


def get_slot(defn: WorkflowDefinition, slot: Slot) -> Connection | None:
    if slot.edge == START:
        return Connection(next_action_id=defn.start_action_id) if defn.start_action_id else None
    a = defn.actions[slot.parent]
    if slot.edge == NEXT:
        return a.connection
    if slot.edge == DEFAULT:
        return a.default_connection
    return next(b.connection for b in a.branches if b.branch_id == slot.edge)


def set_slot(defn: WorkflowDefinition, slot: Slot, conn: Connection | None) -> None:
    if slot.edge == START:
        defn.start_action_id = conn.next_action_id if conn else ""
        return
    a = defn.actions[slot.parent]
    if slot.edge == NEXT:
        a.connection = conn
    elif slot.edge == DEFAULT:
        a.default_connection = conn
    else:
        next(b for b in a.branches if b.branch_id == slot.edge).connection = conn


def slots_of(action: Action) -> list[tuple[str, Connection | None]]:
    out: list[tuple[str, Connection | None]] = [(NEXT, action.connection)]
    out += [(b.branch_id, b.connection) for b in action.branches]
    out.append((DEFAULT, action.default_connection))
    return out


def parent_slot(defn: WorkflowDefinition, action_id: str) -> Slot | None:
    """The slot holding the STANDARD edge into ``action_id`` (None if nothing points at it)."""
    if defn.start_action_id == action_id:
        return Slot("", START)
    for a in defn.actions.values():
        for edge, conn in slots_of(a):
            if conn and conn.next_action_id == action_id and conn.edge_type == EdgeType.STANDARD:
                return Slot(a.action_id, edge)
    return None


def subtree(defn: WorkflowDefinition, root: str) -> list[str]:
    """``root`` and everything it owns through STANDARD edges (GOTO targets live elsewhere)."""
    out: list[str] = []
    stack = [root]
    seen: set[str] = set()
    while stack:
        aid = stack.pop()
        if aid in seen or aid not in defn.actions:
            continue
        seen.add(aid)
        out.append(aid)
        for _, conn in slots_of(defn.actions[aid]):
            if conn and conn.edge_type == EdgeType.STANDARD:
                stack.append(conn.next_action_id)
    return out


def insert(defn: WorkflowDefinition, action: Action, slot: Slot) -> None:
    """Put ``action`` (no outgoing edges yet) into ``slot``; what was there follows it."""
    following = get_slot(defn, slot)
    defn.actions[action.action_id] = action
    if following is not None:
        if is_branching(action):
            if action.default_connection is not None:
                raise InvalidArgument.field(
                    "position", "a branch action with a default path can only go at a path's end"
                )
            action.default_connection = following
        else:
            action.connection = following
    set_slot(defn, slot, Connection(next_action_id=action.action_id))


def _retarget_gotos(defn: WorkflowDefinition, removed: set[str], to: str = "") -> None:
    """GOTO edges into removed actions follow ``to`` (the reconnected path) or are dropped."""
    for a in defn.actions.values():
        for edge, conn in slots_of(a):
            if conn and conn.next_action_id in removed and conn.edge_type == EdgeType.GOTO:
                new = Connection(next_action_id=to, edge_type=EdgeType.GOTO) if to else None
                set_slot(defn, Slot(a.action_id, edge), new)


def detach(defn: WorkflowDefinition, action_id: str) -> None:
    """Take a non-branching action out of its path, joining its parent to what followed it."""
    a = get_action(defn, action_id)
    ps = parent_slot(defn, action_id)
    if ps is not None:
        set_slot(defn, ps, a.connection)
    a.connection = None


def delete(
    defn: WorkflowDefinition, action_id: str, *, with_subtree: bool, keep_branch_id: str = ""
) -> list[str]:
    """Delete an action; returns every removed id. Reconnects unless ``with_subtree``."""
    a = get_action(defn, action_id)
    ps = parent_slot(defn, action_id)
    removed: list[str]
    follow = ""
    if with_subtree:
        removed = subtree(defn, action_id)
        if ps is not None:
            set_slot(defn, ps, None)
    elif not is_branching(a):
        follow = a.connection.next_action_id if a.connection else ""
        detach(defn, action_id)
        removed = [action_id]
        # A branch-less action may still own a timeout branch (delay until event).
        for b in a.branches:
            if b.connection and b.connection.edge_type == EdgeType.STANDARD:
                removed += subtree(defn, b.connection.next_action_id)
    else:
        if not keep_branch_id:
            raise InvalidArgument.field(
                "keep_branch_id",
                "deleting a branch action without its subtree needs the branch to keep",
            )
        kept = {e: c for e, c in slots_of(a) if e != NEXT}
        if keep_branch_id not in kept:
            raise InvalidArgument.field(
                "keep_branch_id", f"{action_id} has no branch {keep_branch_id!r}"
            )
        keep = kept[keep_branch_id]
        removed = [action_id]
        for edge, conn in kept.items():
            if edge != keep_branch_id and conn and conn.edge_type == EdgeType.STANDARD:
                removed += subtree(defn, conn.next_action_id)
        if ps is not None:
            set_slot(defn, ps, keep)
        follow = keep.next_action_id if keep else ""
    gone = set(removed)
    for aid in removed:
        defn.actions.pop(aid, None)
    if follow in gone:
        follow = ""
    _retarget_gotos(defn, gone, follow)
    return removed


def move(defn: WorkflowDefinition, action_id: str, slot: Slot) -> None:
    a = get_action(defn, action_id)
    if slot.parent == action_id or (is_branching(a) and slot.parent in subtree(defn, action_id)):
        raise InvalidArgument.field(
            "position", "cannot move an action into itself or its own branches"
        )
    if is_branching(a):
        ps = parent_slot(defn, action_id)
        if ps is not None:
            set_slot(defn, ps, None)
        del defn.actions[action_id]
    else:
        detach(defn, action_id)
        del defn.actions[action_id]
    insert(defn, a, slot)


def clone(defn: WorkflowDefinition, action_id: str, slot: Slot | None) -> str:
    src = get_action(defn, action_id)
    if slot is None:
        if is_branching(src):
            raise InvalidArgument.field("position", "required when cloning a branch action")
        slot = Slot(action_id, NEXT)
    copy = src.model_copy(deep=True)
    copy.action_id = new_id("a_", defn.actions)
    copy.connection = None
    copy.default_connection = None
    copy.comments = []
    for b in copy.branches:
        b.connection = None
    insert(defn, copy, slot)
    return copy.action_id


def check_structure(defn: WorkflowDefinition, *, field: str = "definition") -> None:
    """Whole-document invariants: edges point at actions; STANDARD edges form a tree."""
    errs = ErrorList()
    if defn.actions and defn.start_action_id not in defn.actions:
        errs.add(f"{field}.start_action_id", "must name one of the actions")
    if not defn.actions and defn.start_action_id:
        errs.add(f"{field}.start_action_id", "no actions to start with")
    owners: dict[str, str] = {}
    if defn.start_action_id:
        owners[defn.start_action_id] = "start"
    for a in defn.actions.values():
        branch_ids = [b.branch_id for b in a.branches]
        if DEFAULT in branch_ids or len(set(branch_ids)) != len(branch_ids):
            errs.add(
                f"{field}.actions.{a.action_id}.branches",
                "branch ids must be unique and not 'default'",
            )
        if is_branching(a) and a.connection is not None:
            errs.add(
                f"{field}.actions.{a.action_id}.connection", "branch actions continue on branches"
            )
        for edge, conn in slots_of(a):
            if conn is None:
                continue
            path = f"{field}.actions.{a.action_id}.{edge}"
            if conn.next_action_id not in defn.actions:
                errs.add(path, f"points at unknown action {conn.next_action_id!r}")
            elif conn.edge_type == EdgeType.STANDARD:
                if conn.next_action_id in owners:
                    errs.add(path, f"{conn.next_action_id} already has a parent; use a GOTO edge")
                owners[conn.next_action_id] = a.action_id
    errs.raise_if_any("invalid action graph")
    # A STANDARD cycle would make an action its own ancestor: walk up from every action.
    for aid in defn.actions:
        seen: set[str] = set()
        cur = aid
        while cur in owners and owners[cur] != "start":
            if cur in seen:
                raise InvalidArgument.field(f"{field}.actions.{aid}", "standard edges form a cycle")
            seen.add(cur)
            cur = owners[cur]
