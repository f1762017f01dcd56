"""Granular edits as pure functions of the draft: each checks its input, mutates the definition
(a fresh copy per request) and returns (result, audit summary). The editor core wraps them in
one transaction with the revision check, the change log and the audit entry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from crmflow.actions.registry import ActionRegistry
from crmflow.errors import InvalidArgument, NotFound
from crmflow.model.actions import Action, Comment
from crmflow.model.data_sources import MAX_DATA_SOURCES, DataSource
from crmflow.model.settings import WorkflowSettings
from crmflow.model.triggers import EnrollmentSettings
from crmflow.model.workflow import WorkflowDefinition
from editor_api import graph
from editor_api.plans import Plan, enforce_action, enforce_triggers

Edit = Callable[[WorkflowDefinition, Plan], tuple[Any, str]]


@dataclass(frozen=True)
class PositionArg:
    after_action_id: str = ""
    parent_action_id: str = ""
    branch_id: str = ""


def _slot(defn: WorkflowDefinition, pos: PositionArg | None) -> graph.Slot | None:
    if pos is None:
        return None
    return graph.slot_for(
        defn,
        after_action_id=pos.after_action_id,
        parent_action_id=pos.parent_action_id,
        branch_id=pos.branch_id,
    )


def check_action(action: Action, registry: ActionRegistry, plan: Plan, *, field: str) -> None:
    """Known type, allowed by the plan, and -- unless a placeholder -- complete fields."""
    if (action.action_type, action.type_version) not in registry:
        try:
            registry.get(action.action_type, action.type_version)
        except InvalidArgument as exc:
            raise InvalidArgument.field(f"{field}.action_type", exc.message) from None
    enforce_action(plan, registry, action.action_type, action.type_version)
    ids = [b.branch_id for b in action.branches]
    if graph.DEFAULT in ids or len(set(ids)) != len(ids) or "" in ids:
        raise InvalidArgument.field(
            f"{field}.branches", "branch ids must be unique, non-empty and not 'default'"
        )
    if not action.placeholder:
        registry.get(action.action_type, action.type_version).parse_fields(
            action.fields, path=f"{field}.fields"
        )


def add_action(registry: ActionRegistry, action: Action, pos: PositionArg | None) -> Edit:
    def run(defn: WorkflowDefinition, plan: Plan) -> tuple[Any, str]:
        if action.action_id in defn.actions:
            raise InvalidArgument.field("action.action_id", "an action with this id exists")
        if (
            action.connection
            or action.default_connection
            or any(b.connection for b in action.branches)
        ):
            raise InvalidArgument.field(
                "action.connection", "edges are set by the editor; leave them empty"
            )
        check_action(action, registry, plan, field="action")
        slot = _slot(defn, pos) or graph.Slot("", graph.START)
        graph.insert(defn, action, slot)
        return action.action_id, f"added {action.action_type} action {action.action_id}"

    return run


def update_action(registry: ActionRegistry, action: Action) -> Edit:
    def run(defn: WorkflowDefinition, plan: Plan) -> tuple[Any, str]:
        old = graph.get_action(defn, action.action_id)
        check_action(action, registry, plan, field="action")
        new = action.model_copy(deep=True)
        new.comments = old.comments
        old_branches = {b.branch_id: b.connection for b in old.branches}
        for b in new.branches:
            b.connection = old_branches.get(b.branch_id)
        dropped = [
            c
            for bid, c in old_branches.items()
            if c and bid not in {b.branch_id for b in new.branches}
        ]
        if graph.is_branching(new):
            new.connection = None
            new.default_connection = old.default_connection or old.connection
        else:
            new.connection = old.connection or old.default_connection
            new.default_connection = None
        defn.actions[action.action_id] = new
        removed: list[str] = []
        for conn in dropped:
            if conn.next_action_id in defn.actions and conn.edge_type == "EDGE_TYPE_STANDARD":
                # Detach the dropped branch from nothing (its parent slot is gone) and delete it.
                removed += graph.subtree(defn, conn.next_action_id)
        for aid in removed:
            defn.actions.pop(aid, None)
        graph._retarget_gotos(defn, set(removed))
        note = f" (removed {len(removed)} actions of dropped branches)" if removed else ""
        return None, f"updated action {action.action_id}{note}"

    return run


def clone_action(action_id: str, pos: PositionArg | None, registry: ActionRegistry) -> Edit:
    def run(defn: WorkflowDefinition, plan: Plan) -> tuple[Any, str]:
        src = graph.get_action(defn, action_id)
        enforce_action(plan, registry, src.action_type, src.type_version)
        new_id = graph.clone(defn, action_id, _slot(defn, pos))
        return new_id, f"cloned action {action_id} as {new_id}"

    return run


def move_action(action_id: str, pos: PositionArg) -> Edit:
    def run(defn: WorkflowDefinition, plan: Plan) -> tuple[Any, str]:
        graph.get_action(defn, action_id)
        graph.move(defn, action_id, _slot(defn, pos) or graph.Slot("", graph.START))
        return None, f"moved action {action_id}"

    return run


def delete_action(action_id: str, with_subtree: bool, keep_branch_id: str) -> Edit:
    def run(defn: WorkflowDefinition, plan: Plan) -> tuple[Any, str]:
        removed = graph.delete(
            defn, action_id, with_subtree=with_subtree, keep_branch_id=keep_branch_id
        )
        how = "with its subtree" if with_subtree else "reconnecting the path"
        return removed, f"deleted action {action_id} {how} ({len(removed)} removed)"

    return run


def add_comment(action_id: str, text: str, author: str, now: datetime) -> Edit:
    def run(defn: WorkflowDefinition, plan: Plan) -> tuple[Any, str]:
        if not text.strip():
            raise InvalidArgument.field("text", "must not be empty")
        a = graph.get_action(defn, action_id)
        cid = graph.new_id("c_", {c.comment_id for c in a.comments})
        a.comments.append(Comment(comment_id=cid, author=author, text=text, created_at=now))
        return cid, f"commented on action {action_id}"

    return run


def _comment(defn: WorkflowDefinition, action_id: str, comment_id: str) -> tuple[Action, int]:
    a = graph.get_action(defn, action_id)
    for i, c in enumerate(a.comments):
        if c.comment_id == comment_id:
            return a, i
    raise NotFound("comment", comment_id)


def update_comment(action_id: str, comment_id: str, text: str) -> Edit:
    def run(defn: WorkflowDefinition, plan: Plan) -> tuple[Any, str]:
        if not text.strip():
            raise InvalidArgument.field("text", "must not be empty")
        a, i = _comment(defn, action_id, comment_id)
        a.comments[i] = a.comments[i].model_copy(update={"text": text})
        return None, f"edited comment {comment_id} on action {action_id}"

    return run


def delete_comment(action_id: str, comment_id: str) -> Edit:
    def run(defn: WorkflowDefinition, plan: Plan) -> tuple[Any, str]:
        a, i = _comment(defn, action_id, comment_id)
        del a.comments[i]
        return None, f"deleted comment {comment_id} on action {action_id}"

    return run


def add_data_source(source: DataSource) -> Edit:
    def run(defn: WorkflowDefinition, plan: Plan) -> tuple[Any, str]:
        if len(defn.data_sources) >= MAX_DATA_SOURCES:
            raise InvalidArgument.field(
                "data_source", f"a workflow has at most {MAX_DATA_SOURCES} data sources"
            )
        if any(s.source_id == source.source_id for s in defn.data_sources):
            raise InvalidArgument.field(
                "data_source.source_id", "a data source with this id exists"
            )
        defn.data_sources.append(source)
        return source.source_id, f"added data source {source.source_id} ({source.object_type})"

    return run


def update_data_source(source: DataSource) -> Edit:
    def run(defn: WorkflowDefinition, plan: Plan) -> tuple[Any, str]:
        for i, s in enumerate(defn.data_sources):
            if s.source_id == source.source_id:
                defn.data_sources[i] = source
                return None, f"updated data source {source.source_id}"
        raise NotFound("data source", source.source_id)

    return run


def delete_data_source(source_id: str) -> Edit:
    def run(defn: WorkflowDefinition, plan: Plan) -> tuple[Any, str]:
        before = len(defn.data_sources)
        defn.data_sources = [s for s in defn.data_sources if s.source_id != source_id]
        if len(defn.data_sources) == before:
            raise NotFound("data source", source_id)
        return None, f"deleted data source {source_id}"

    return run


def update_triggers(enrollment: EnrollmentSettings) -> Edit:
    def run(defn: WorkflowDefinition, plan: Plan) -> tuple[Any, str]:
        enforce_triggers(plan, enrollment)
        defn.enrollment = enrollment
        kinds = ", ".join(t.kind for t in enrollment.triggers) or "manual only"
        return None, f"updated enrollment triggers ({kinds})"

    return run


def update_settings(settings: WorkflowSettings) -> Edit:
    def run(defn: WorkflowDefinition, plan: Plan) -> tuple[Any, str]:
        defn.settings = settings
        return None, "updated settings"

    return run


def rename(name: str, description: str | None, folder: str | None) -> Edit:
    def run(defn: WorkflowDefinition, plan: Plan) -> tuple[Any, str]:
        if not name.strip():
            raise InvalidArgument.field("name", "must not be empty")
        if len(name) > 512:
            raise InvalidArgument.field("name", "at most 512 characters")
        if folder is not None and len(folder) > 256:
            raise InvalidArgument.field("folder", "at most 256 characters")
        old = defn.name
        defn.name = name
        if description is not None:
            defn.description = description
        if folder is not None:
            defn.folder = folder
        return None, f"renamed {old!r} to {name!r}"

    return run
