"""The editor core: drafts, edits with optimistic concurrency, undo/redo, validation.

Every edit is one transaction: read the row, apply a pure edit to a fresh copy of the draft,
write it with a revision-conditional UPDATE (ABORTED when someone else won), append the change
(for undo) and the audit entry. A refused edit raises before anything is written, and the
transaction rolls back, so nothing is half-applied. Lifecycle (publish, on/off, archive) lives
in ``lifecycle.py`` on top of this class.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from crmflow.actions.registry import ActionRegistry
from crmflow.errors import (
    Aborted,
    AlreadyExists,
    ErrorList,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PreconditionViolation,
)
from crmflow.model.default_sources import with_defaults
from crmflow.model.workflow import WorkflowDefinition, WorkflowStatus
from editor_api import changes, graph
from editor_api import repository as repo
from editor_api.db import AuditRow, HandoffRow, WorkflowRow, utcnow
from editor_api.documents import ModelCache, dump
from editor_api.edits import Edit
from editor_api.plans import Plan, enforce_definition, enforce_workflow_count
from editor_api.validation import (
    EnrollmentFilterRef,
    Issue,
    PropertySource,
    enrollment_filter_refs,
    load_events,
    load_properties,
    referenced_workflows,
    validate,
)

CUSTOM_CODE = "custom_code"


@dataclass
class WorkflowView:
    row: WorkflowRow
    undo_available: int = 0
    redo_available: int = 0
    handoff: HandoffRow | None = None


def require(field: str, value: str) -> None:
    if not value:
        raise InvalidArgument.field(field, "required")
    if field in ("tenant_id", "workflow_id", "definition.workflow_id") and len(value) > 64:
        raise InvalidArgument.field(field, "at most 64 characters")


def check_actor(actor: str) -> None:
    if len(actor) > 256:
        raise InvalidArgument.field("actor", "at most 256 characters")


# Column sizes (db.py): a longer value must be a field violation, not a database error.
_LIMITS = {"workflow_id": 64, "name": 512, "folder": 256, "object_type": 128}


def check_sizes(defn: WorkflowDefinition, *, actor: str = "") -> None:
    errs = ErrorList()
    for name, limit in _LIMITS.items():
        if len(getattr(defn, name)) > limit:
            errs.add(f"definition.{name}", f"at most {limit} characters")
    if not defn.object_type.strip():
        errs.add("definition.object_type", "required")
    if len(actor) > 256:
        errs.add("actor", "at most 256 characters")
    errs.raise_if_any()


class EditorCore:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        registry: ActionRegistry,
        properties: PropertySource | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.registry = registry
        self.properties = properties
        self.clock = clock
        self.models = ModelCache()
        # Undoability per type; a type the registry does not know falls back to its name.
        self._irreversible_types = {s.action_type for s in registry.all() if not s.undoable}

    # -- helpers ------------------------------------------------------------------------
    def irreversible(self, action_type: str) -> bool:
        known = any(s.action_type == action_type for s in self.registry.all())
        return action_type in self._irreversible_types or (not known and action_type == CUSTOM_CODE)

    def irreversible_reason(self, old: changes.Patch, new: changes.Patch, ids: list[str]) -> str:
        for aid in ids:
            b, a = old["actions"][aid], new["actions"][aid]
            types = {x["action_type"] for x in (b, a) if x}
            if any(self.irreversible(t) for t in types):
                return (
                    f"this change touches custom-code action {aid!r}; changes to custom-code "
                    "actions cannot be undone or redone"
                )
        return ""

    async def known_workflows(
        self, session: AsyncSession, tenant_id: str, defn: WorkflowDefinition
    ) -> dict[str, str]:
        """Referenced workflow id -> the object type it enrolls (existing ones only)."""
        return await repo.workflow_object_types(
            session, tenant_id=tenant_id, workflow_ids=referenced_workflows(defn)
        )

    async def plan(self, session: AsyncSession, tenant_id: str) -> Plan:
        return Plan.from_row(tenant_id, await repo.get_plan(session, tenant_id=tenant_id))

    @staticmethod
    def expect(row: WorkflowRow, expected: int) -> None:
        """0 = "whatever is current" (the conditional UPDATE still catches races)."""
        if expected < 0:
            raise InvalidArgument.field("expected_draft_revision", "must not be negative")
        if expected and expected != row.draft_revision:
            raise Aborted(
                f"workflow {row.workflow_id} is at draft revision {row.draft_revision}, "
                f"not {expected}; re-read it and apply the edit again"
            )

    @staticmethod
    def editable(row: WorkflowRow) -> None:
        if row.status == WorkflowStatus.ARCHIVED:
            raise FailedPrecondition(
                f"workflow {row.workflow_id} is archived; restore it to edit",
                [PreconditionViolation("STATUS", row.workflow_id, "archived")],
            )

    async def view(self, session: AsyncSession, row: WorkflowRow) -> WorkflowView:
        undo, redo = await repo.change_counts(
            session, tenant_id=row.tenant_id, workflow_id=row.workflow_id, now=self.clock()
        )
        handoff = await repo.get_handoff(
            session, tenant_id=row.tenant_id, workflow_id=row.workflow_id
        )
        return WorkflowView(row, undo, redo, handoff)

    @staticmethod
    def row_values(defn: WorkflowDefinition) -> dict[str, object]:
        return {
            "name": defn.name,
            "description": defn.description,
            "folder": defn.folder,
            "object_type": defn.object_type,
        }

    async def write_draft(
        self,
        session: AsyncSession,
        row: WorkflowRow,
        defn: WorkflowDefinition,
        *,
        operation: str,
        actor: str,
        summary: str,
    ) -> bool:
        """Save ``defn`` as the new draft with its change-log and audit entries."""
        before = row.draft
        after = dump(defn)
        if after == before:
            return False
        now = self.clock()
        old, new, changed = changes.diff(json.loads(before), json.loads(after))
        reason = self.irreversible_reason(old, new, changed)
        rev = await repo.save_draft(
            session, row=row, draft=after, values=self.row_values(defn), now=now
        )
        await repo.record_change(
            session,
            tenant_id=row.tenant_id,
            workflow_id=row.workflow_id,
            operation=operation,
            actor=actor,
            before=changes.dumps(old),
            after=changes.dumps(new),
            irreversible_reason=reason,
            now=now,
        )
        await repo.audit(
            session,
            tenant_id=row.tenant_id,
            workflow_id=row.workflow_id,
            actor=actor,
            operation=operation,
            summary=summary,
            draft_revision=rev,
            now=now,
        )
        return True

    # -- operations -------------------------------------------------------------------
    async def create(
        self,
        tenant_id: str,
        defn: WorkflowDefinition,
        *,
        actor: str,
        source: str,
        from_template: bool = False,
    ) -> WorkflowView:
        require("tenant_id", tenant_id)
        if defn.tenant_id and defn.tenant_id != tenant_id:
            raise InvalidArgument.field("definition.tenant_id", "does not match tenant_id")
        defn.tenant_id = tenant_id
        defn.workflow_id = defn.workflow_id or f"wf_{uuid.uuid4().hex[:16]}"
        # HubSpot adds default data sources (e.g. the contact's primary company) to contact,
        # company, deal and ticket workflows; ids the client already used are left alone.
        defn = with_defaults(defn)
        check_sizes(defn, actor=actor)
        graph.check_structure(defn)
        now = self.clock()
        async with self.sessions() as s, s.begin():
            plan = await self.plan(s, tenant_id)
            self.check_actions(defn, plan, lenient_placeholders=from_template)
            enforce_definition(plan, self.registry, defn)
            count = await repo.count_workflows(
                s, tenant_id=tenant_id, exclude_status=WorkflowStatus.ARCHIVED
            )
            enforce_workflow_count(plan, count)
            try:
                await repo.get_workflow(s, tenant_id=tenant_id, workflow_id=defn.workflow_id)
            except NotFound:
                pass
            else:
                raise AlreadyExists(f"workflow {defn.workflow_id!r} already exists")
            row = WorkflowRow(
                tenant_id=tenant_id,
                workflow_id=defn.workflow_id,
                status=WorkflowStatus.DRAFT,
                draft=dump(defn),
                draft_revision=1,
                created_by=actor,
                created_at=now,
                updated_at=now,
                **self.row_values(defn),  # type: ignore[arg-type]
            )
            s.add(row)
            await repo.audit(
                s,
                tenant_id=tenant_id,
                workflow_id=defn.workflow_id,
                actor=actor,
                operation="CreateWorkflow",
                summary=f"created {source}",
                draft_revision=1,
                now=now,
            )
            await s.flush()
            return await self.view(s, row)

    def check_actions(
        self, defn: WorkflowDefinition, plan: Plan, *, lenient_placeholders: bool = False
    ) -> None:
        """Whole documents from clients: known types; fields may be incomplete (validation
        reports them), so only the type and the plan are enforced here. Templates may carry
        placeholders of types this deployment's registry lacks: they arrive as placeholders
        flagged ``unknown_action_type`` for the user to replace, rather than making the
        template unusable."""
        for aid, a in defn.actions.items():
            if lenient_placeholders and a.placeholder:
                continue
            if (a.action_type, a.type_version) not in self.registry:
                raise InvalidArgument.field(
                    f"definition.actions.{aid}.action_type",
                    f"unknown action type {a.action_type!r} v{a.type_version}",
                )

    async def get(self, tenant_id: str, workflow_id: str) -> WorkflowView:
        require("tenant_id", tenant_id)
        require("workflow_id", workflow_id)
        async with self.sessions() as s:
            row = await repo.get_workflow(s, tenant_id=tenant_id, workflow_id=workflow_id)
            return await self.view(s, row)

    async def edit(
        self,
        tenant_id: str,
        workflow_id: str,
        *,
        expected: int,
        actor: str,
        operation: str,
        fn: Edit,
    ) -> tuple[WorkflowView, Any]:
        require("tenant_id", tenant_id)
        require("workflow_id", workflow_id)
        check_actor(actor)
        async with self.sessions() as s, s.begin():
            row = await repo.get_workflow(s, tenant_id=tenant_id, workflow_id=workflow_id)
            self.editable(row)
            self.expect(row, expected)
            plan = await self.plan(s, tenant_id)
            defn = self.models.take(row.draft)
            before = {(r.action_id, r.path, r.workflow_id) for r in enrollment_filter_refs(defn)}
            result, summary = fn(defn, plan)
            await self.check_enrollment_filters(s, tenant_id, defn, before, operation)
            await self.write_draft(s, row, defn, operation=operation, actor=actor, summary=summary)
            self.models.put(row.draft, defn)
            return await self.view(s, row), result

    async def check_enrollment_filters(
        self,
        session: AsyncSession,
        tenant_id: str,
        defn: WorkflowDefinition,
        before: set[tuple[str, str, str]],
        operation: str,
    ) -> None:
        """ "Enrolled in workflow X" filters this edit adds must name an existing workflow of
        the tenant (INVALID_ARGUMENT naming the field, in the request's own terms). Filters
        already in the draft are left to ValidateWorkflow: deleting workflow X must not make
        every later edit of this one fail."""
        added = [
            r
            for r in enrollment_filter_refs(defn)
            if (r.action_id, r.path, r.workflow_id) not in before
        ]
        if not added:
            return

        def field(r: EnrollmentFilterRef) -> str:
            if r.action_id and operation in ("AddAction", "UpdateAction"):
                return f"action.{r.path}"  # the request's own action
            path = f"actions.{r.action_id}.{r.path}" if r.action_id else r.path
            return ("definition." if operation == "UpdateWorkflow" else "") + path

        known = await repo.workflow_object_types(
            session, tenant_id=tenant_id, workflow_ids={r.workflow_id for r in added}
        )
        for r in added:
            if r.workflow_id not in known:
                raise InvalidArgument.field(
                    field(r) + ".workflow_id", f"workflow {r.workflow_id!r} does not exist"
                )
            if known[r.workflow_id] != defn.object_type:
                raise InvalidArgument.field(
                    field(r) + ".workflow_id",
                    f"workflow {r.workflow_id!r} enrolls {known[r.workflow_id]} records; this "
                    f"workflow enrolls {defn.object_type} records, which are never enrolled there",
                )

    async def replace(
        self, tenant_id: str, new: WorkflowDefinition, *, expected: int, actor: str
    ) -> WorkflowView:
        require("definition.workflow_id", new.workflow_id)

        def run(defn: WorkflowDefinition, plan: Plan) -> tuple[Any, str]:
            if new.tenant_id and new.tenant_id != tenant_id:
                raise InvalidArgument.field("definition.tenant_id", "does not match tenant_id")
            if new.object_type != defn.object_type:
                raise InvalidArgument.field(
                    "definition.object_type", "the object type of a workflow cannot change"
                )
            new.tenant_id = tenant_id
            check_sizes(new, actor=actor)
            graph.check_structure(new)
            self.check_actions(new, plan)
            enforce_definition(plan, self.registry, new)
            for field in WorkflowDefinition.model_fields:
                setattr(defn, field, getattr(new, field))
            return None, "replaced the draft"

        view, _ = await self.edit(
            tenant_id,
            new.workflow_id,
            expected=expected,
            actor=actor,
            operation="UpdateWorkflow",
            fn=run,
        )
        return view

    async def step(
        self, tenant_id: str, workflow_id: str, *, expected: int, actor: str, redo: bool
    ) -> tuple[WorkflowView, str]:
        """Undo (redo=False) or redo one change of the last 30 days."""
        require("tenant_id", tenant_id)
        require("workflow_id", workflow_id)
        check_actor(actor)
        word = "redo" if redo else "undo"
        async with self.sessions() as s, s.begin():
            row = await repo.get_workflow(s, tenant_id=tenant_id, workflow_id=workflow_id)
            self.editable(row)
            self.expect(row, expected)
            now = self.clock()
            ch = await repo.last_change(
                s, tenant_id=tenant_id, workflow_id=workflow_id, undone=redo, now=now
            )
            if ch is None:
                raise FailedPrecondition(
                    f"nothing to {word} in the last 30 days",
                    [PreconditionViolation(word.upper(), workflow_id, "empty history")],
                )
            if ch.irreversible_reason:
                raise FailedPrecondition(
                    f"cannot {word} {ch.operation}: {ch.irreversible_reason}",
                    [PreconditionViolation("CUSTOM_CODE", ch.operation, ch.irreversible_reason)],
                )
            src, dst = (ch.before, ch.after) if redo else (ch.after, ch.before)
            doc = json.loads(row.draft)
            if not changes.matches(doc, json.loads(src)):
                raise FailedPrecondition(f"the draft no longer matches the change to {word}")
            defn = WorkflowDefinition.model_validate(changes.apply(doc, json.loads(dst)))
            dst = dump(defn)
            rev = await repo.save_draft(
                s, row=row, draft=dst, values=self.row_values(defn), now=now
            )
            ch.undone = not redo
            s.add(ch)
            await repo.audit(
                s,
                tenant_id=tenant_id,
                workflow_id=workflow_id,
                actor=actor,
                operation="Redo" if redo else "Undo",
                summary=f"{word}: {ch.operation}",
                draft_revision=rev,
                now=now,
            )
            await s.flush()
            return await self.view(s, row), ch.operation

    async def validate(
        self, tenant_id: str, workflow_id: str
    ) -> tuple[WorkflowRow, WorkflowDefinition, list[Issue], bool]:
        require("tenant_id", tenant_id)
        require("workflow_id", workflow_id)
        async with self.sessions() as s:
            row = await repo.get_workflow(s, tenant_id=tenant_id, workflow_id=workflow_id)
            plan = await self.plan(s, tenant_id)
            defn = self.models.take(row.draft)
            known = await self.known_workflows(s, tenant_id, defn)
        issues, properties_checked = await self.check(tenant_id, defn, plan, known)
        # Read-only from here on: the caller lays it out before its next await.
        self.models.put(row.draft, defn)
        return row, defn, issues, properties_checked

    async def check(
        self, tenant_id: str, defn: WorkflowDefinition, plan: Plan, known: dict[str, str]
    ) -> tuple[list[Issue], bool]:
        """Every validation issue of ``defn`` against the tenant's CRM schema (asked outside any
        transaction), and whether the CRM answered (property names were checked)."""
        props = await load_properties(self.properties, tenant_id, defn)
        events = await load_events(self.properties, tenant_id, defn)
        issues = validate(
            defn,
            registry=self.registry,
            plan=plan,
            properties=props,
            known_workflows=known,
            events=events,
        )
        return issues, props is not None

    async def audit_entries(
        self, tenant_id: str, workflow_id: str, page_size: int, page_token: str
    ) -> tuple[list[AuditRow], str]:
        """Kept after the workflow is deleted, so this does not require the workflow to exist."""
        require("tenant_id", tenant_id)
        require("workflow_id", workflow_id)
        if page_size < 0 or page_size > 500:
            raise InvalidArgument.field("page_size", "between 0 and 500")
        async with self.sessions() as s:
            return await repo.list_audit(
                s,
                tenant_id=tenant_id,
                workflow_id=workflow_id,
                page_size=page_size or 50,
                page_token=page_token,
            )
