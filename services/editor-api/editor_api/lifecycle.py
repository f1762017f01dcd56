"""Review, publish, on/off, archive, delete -- and the hand-off of revisions to enrollment.

Publish never half-happens. In one transaction it freezes the immutable revision, flips the
status and writes an outbox row (``editor_handoffs``); only then does it call enrollment. If
enrollment answers, the outbox row is deleted; if it cannot be reached, the publish still
stands (the revision exists and is what the workflow runs once delivered), the workflow reports
``handoff_pending`` with the error, and a background task retries with backoff until enrollment
acknowledges (``outbox.py``). ActivateRevision / DeactivateWorkflow are idempotent on
enrollment's side, so a retry after a lost acknowledgement is harmless. A newer intent (turn
off after publish) replaces an undelivered older one, so the last word always wins.
"""

from __future__ import annotations

from crmflow.errors import Aborted, FailedPrecondition, InvalidArgument, PreconditionViolation
from crmflow.model.workflow import PublishedRevision, WorkflowDefinition, WorkflowStatus
from editor_api import naming, outbox
from editor_api import repository as repo
from editor_api.db import PublishedRevisionRow, WorkflowRow
from editor_api.documents import dump, parse, revision_model
from editor_api.enrollment_client import EnrollmentGateway, EnrollmentUnavailable
from editor_api.outbox import Deliverer
from editor_api.service import EditorCore, WorkflowView, check_actor, require


class Lifecycle:
    def __init__(self, core: EditorCore, enrollment: EnrollmentGateway) -> None:
        self.core = core
        self.enrollment = enrollment
        self.handoffs = Deliverer(core, enrollment)
        self.deliver = self.handoffs.deliver

    async def publish(
        self, tenant_id: str, workflow_id: str, *, expected: int, enroll_existing: bool, actor: str
    ) -> tuple[WorkflowView, PublishedRevision]:
        core = self.core
        require("tenant_id", tenant_id)
        require("workflow_id", workflow_id)
        check_actor(actor)
        async with core.sessions() as s, s.begin():
            row = await repo.get_workflow(s, tenant_id=tenant_id, workflow_id=workflow_id)
            core.editable(row)
            core.expect(row, expected)
            if (
                row.status == WorkflowStatus.ON
                and row.published_draft_revision == row.draft_revision
            ):
                # Nothing new: a retried publish returns the live revision instead of a copy.
                current = await repo.get_revision(
                    s, tenant_id=tenant_id, workflow_id=workflow_id, revision=row.published_revision
                )
                return await core.view(s, row), revision_model(current)
            defn = parse(row.draft)
            plan = await core.plan(s, tenant_id)
            known = await core.known_workflows(s, tenant_id, defn)
        # The CRM is asked outside the transaction; the revision check below guards the gap.
        issues, _ = await core.check(tenant_id, defn, plan, known)
        if issues:
            shown = "; ".join(f"{i.action_id or 'workflow'}: {i.message}" for i in issues[:5])
            raise FailedPrecondition(
                f"cannot publish: {len(issues)} issue(s) must be fixed first: {shown}",
                [
                    PreconditionViolation(i.code, i.action_id or "workflow", i.message)
                    for i in issues
                ],
            )
        async with core.sessions() as s, s.begin():
            fresh = await repo.get_workflow(s, tenant_id=tenant_id, workflow_id=workflow_id)
            if fresh.draft_revision != row.draft_revision or fresh.status != row.status:
                raise Aborted(f"workflow {workflow_id} changed while publishing; try again")
            row = fresh
            if not defn.name or not defn.description:
                name, description = naming.generate(defn, core.registry)
                defn.name = defn.name or name
                defn.description = defn.description or description
                await core.write_draft(
                    s,
                    row,
                    defn,
                    operation="PublishWorkflow",
                    actor=actor,
                    summary="generated name and description",
                )
            now = core.clock()
            revision = row.published_revision + 1
            frozen = PublishedRevisionRow(
                tenant_id=tenant_id,
                workflow_id=workflow_id,
                revision=revision,
                published_at=now,
                published_by=actor,
                enroll_existing=enroll_existing,
                definition=dump(defn),
            )
            await repo.add_revision(s, row=frozen)
            await repo.set_status(
                s,
                row=row,
                now=now,
                values={
                    "status": WorkflowStatus.ON,
                    "published_revision": revision,
                    "published_draft_revision": row.draft_revision,
                },
            )
            await outbox.put_handoff(
                s,
                tenant_id=tenant_id,
                workflow_id=workflow_id,
                kind="activate",
                revision=revision,
                enroll_existing=enroll_existing,
                now=now,
            )
            await repo.audit(
                s,
                tenant_id=tenant_id,
                workflow_id=workflow_id,
                actor=actor,
                operation="PublishWorkflow",
                summary=f"published revision {revision} (enroll existing: "
                f"{'yes' if enroll_existing else 'no'})",
                draft_revision=row.draft_revision,
                now=now,
            )
        await self.deliver(tenant_id, workflow_id)
        return await core.get(tenant_id, workflow_id), revision_model(frozen)

    async def _status_change(
        self, tenant_id: str, workflow_id: str, *, actor: str, operation: str, flag: bool = False
    ) -> WorkflowView:
        """``flag``: enroll existing records (activate) / unenroll current ones (deactivate)."""
        core = self.core
        require("tenant_id", tenant_id)
        require("workflow_id", workflow_id)
        check_actor(actor)
        async with core.sessions() as s, s.begin():
            row = await repo.get_workflow(s, tenant_id=tenant_id, workflow_id=workflow_id)
            now = core.clock()
            values, handoff, summary = self._transition(row, operation)
            await repo.set_status(s, row=row, values=values, now=now)
            if handoff:
                await outbox.put_handoff(
                    s,
                    tenant_id=tenant_id,
                    workflow_id=workflow_id,
                    kind=handoff[0],
                    revision=handoff[1],
                    enroll_existing=flag,
                    now=now,
                )
            await repo.audit(
                s,
                tenant_id=tenant_id,
                workflow_id=workflow_id,
                actor=actor,
                operation=operation,
                summary=summary,
                draft_revision=row.draft_revision,
                now=now,
            )
        await self.deliver(tenant_id, workflow_id)
        return await core.get(tenant_id, workflow_id)

    @staticmethod
    def _transition(
        row: WorkflowRow, operation: str
    ) -> tuple[dict[str, object], tuple[str, int] | None, str]:
        st = row.status

        def refuse(why: str) -> FailedPrecondition:
            return FailedPrecondition(
                f"cannot {operation} workflow {row.workflow_id}: {why}",
                [PreconditionViolation("STATUS", row.workflow_id, f"status is {st}")],
            )

        if operation == "TurnOffWorkflow":
            if st != WorkflowStatus.ON:
                raise refuse("it is not on")
            return {"status": WorkflowStatus.OFF}, ("deactivate", 0), "turned off"
        if operation == "TurnOnWorkflow":
            if st != WorkflowStatus.OFF:
                raise refuse("only a workflow that is off can be turned on (publish a draft)")
            rev = row.published_revision
            return {"status": WorkflowStatus.ON}, ("activate", rev), f"turned on (revision {rev})"
        if operation == "ArchiveWorkflow":
            if st == WorkflowStatus.ARCHIVED:
                raise refuse("it is already archived")
            handoff = ("deactivate", 0) if st == WorkflowStatus.ON else None
            return {"status": WorkflowStatus.ARCHIVED}, handoff, "archived"
        if operation == "RestoreWorkflow":
            if st != WorkflowStatus.ARCHIVED:
                raise refuse("it is not archived")
            back = WorkflowStatus.OFF if row.published_revision else WorkflowStatus.DRAFT
            return {"status": back}, None, f"restored as {back}"
        raise InvalidArgument.field("operation", operation)

    async def turn_off(
        self, tenant_id: str, workflow_id: str, *, actor: str, unenroll_existing: bool = False
    ) -> WorkflowView:
        return await self._status_change(
            tenant_id, workflow_id, actor=actor, operation="TurnOffWorkflow", flag=unenroll_existing
        )

    async def turn_on(
        self, tenant_id: str, workflow_id: str, *, actor: str, enroll_existing: bool
    ) -> WorkflowView:
        return await self._status_change(
            tenant_id, workflow_id, actor=actor, operation="TurnOnWorkflow", flag=enroll_existing
        )

    async def archive(self, tenant_id: str, workflow_id: str, *, actor: str) -> WorkflowView:
        return await self._status_change(
            tenant_id, workflow_id, actor=actor, operation="ArchiveWorkflow"
        )

    async def restore(self, tenant_id: str, workflow_id: str, *, actor: str) -> WorkflowView:
        return await self._status_change(
            tenant_id, workflow_id, actor=actor, operation="RestoreWorkflow"
        )

    async def delete(self, tenant_id: str, workflow_id: str, *, actor: str) -> None:
        core = self.core
        require("tenant_id", tenant_id)
        require("workflow_id", workflow_id)
        check_actor(actor)
        async with core.sessions() as s, s.begin():
            row = await repo.get_workflow(s, tenant_id=tenant_id, workflow_id=workflow_id)
            if row.status == WorkflowStatus.ON:
                raise FailedPrecondition(
                    f"workflow {workflow_id} is on; turn it off before deleting it",
                    [PreconditionViolation("STATUS", workflow_id, "on")],
                )
            if await repo.get_handoff(s, tenant_id=tenant_id, workflow_id=workflow_id):
                raise FailedPrecondition(
                    f"workflow {workflow_id} has a hand-off to enrollment pending; retry shortly",
                    [PreconditionViolation("HANDOFF", workflow_id, "pending")],
                )
            await repo.delete_workflow(s, row=row)
            await repo.audit(
                s,
                tenant_id=tenant_id,
                workflow_id=workflow_id,
                actor=actor,
                operation="DeleteWorkflow",
                summary=f"deleted {row.name!r}",
                draft_revision=row.draft_revision,
                now=core.clock(),
            )

    async def _draft(self, tenant_id: str, workflow_id: str) -> WorkflowDefinition:
        view = await self.core.get(tenant_id, workflow_id)
        return parse(view.row.draft)

    async def preview(
        self, tenant_id: str, workflow_id: str, sample_size: int
    ) -> tuple[int, list[str]]:
        if sample_size < 0 or sample_size > 100:
            raise InvalidArgument.field("sample_size", "between 0 and 100")
        defn = await self._draft(tenant_id, workflow_id)
        try:
            return await self.enrollment.estimate(tenant_id, defn, sample_size)
        except EnrollmentUnavailable as exc:
            raise FailedPrecondition(f"enrollment is unavailable; try again: {exc}") from None

    async def save_as_list(self, tenant_id: str, workflow_id: str, list_name: str) -> str:
        if not list_name.strip():
            raise InvalidArgument.field("list_name", "required")
        defn = await self._draft(tenant_id, workflow_id)
        try:
            return await self.enrollment.save_as_list(tenant_id, defn, list_name)
        except EnrollmentUnavailable as exc:
            raise FailedPrecondition(f"enrollment is unavailable; try again: {exc}") from None

    async def revisions(self, tenant_id: str, workflow_id: str) -> list[PublishedRevision]:
        await self.core.get(tenant_id, workflow_id)
        async with self.core.sessions() as s:
            rows = await repo.list_revisions(s, tenant_id=tenant_id, workflow_id=workflow_id)
        return [revision_model(r) for r in rows]
