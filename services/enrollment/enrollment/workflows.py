"""Active workflows: published revisions in (persisted, indexed), turned on and off.

The database is the truth (a restart reloads every active revision into the index); the trigger
index is a cache of it compiled for speed. Schedules and the backfill are Temporal-side effects
of activation, delegated to hooks so this module stays about the revision itself.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from crmflow.errors import FailedPrecondition, NotFound, PreconditionViolation
from crmflow.model.enrollment import UnenrollReason
from crmflow.model.workflow import PublishedRevision
from enrollment.compiled import CompiledWorkflow, compile_revision
from enrollment.enroller import Enroller
from enrollment.ledger import Ledger
from enrollment.tables import ActiveRevision
from enrollment.time_recheck import needs_recheck
from enrollment.trigger_index import TriggerIndex

log = logging.getLogger("crmflow.enrollment.workflows")

# (compiled workflow) -> schedule ids; called on activation and on turning off.
ScheduleHook = Callable[[CompiledWorkflow], Awaitable[list[str]]]
BackfillHook = Callable[[CompiledWorkflow], Awaitable[str]]


async def _no_schedules(cw: CompiledWorkflow) -> list[str]:
    return []


class ActiveWorkflows:
    def __init__(
        self,
        *,
        index: TriggerIndex,
        ledger: Ledger,
        enroller: Enroller,
        sync_schedules: ScheduleHook = _no_schedules,
        start_backfill: BackfillHook | None = None,
    ) -> None:
        self.index = index
        self.ledger = ledger
        self.enroller = enroller
        self.sync_schedules = sync_schedules
        self.start_backfill = start_backfill

    async def load(self) -> int:
        """Fill the index from the database (start-up)."""
        n = 0
        for row in await self.ledger.revisions():
            rev = PublishedRevision.model_validate(row.definition)
            try:
                self.index.put(compile_revision(rev, enabled=row.enabled))
                n += 1
            except Exception:  # one bad stored revision must not stop the service
                log.exception(
                    "cannot index %s/%s r%d", row.tenant_id, row.workflow_id, row.revision
                )
        return n

    def get(self, tenant_id: str, workflow_id: str) -> CompiledWorkflow:
        cw = self.index.get(tenant_id, workflow_id)
        if cw is None:
            raise NotFound("workflow", workflow_id)
        return cw

    async def activate(
        self, rev: PublishedRevision, *, enroll_existing: bool, now: datetime
    ) -> tuple[str, list[str]]:
        """Compile, persist and index a revision (turning the workflow on)."""
        cw = compile_revision(rev, enabled=True)  # InvalidArgument naming a bad filter
        current = self.index.get(rev.tenant_id, rev.workflow_id)
        if current is not None and current.revision.revision > rev.revision:
            raise FailedPrecondition(
                f"revision {rev.revision} is older than the active revision "
                f"{current.revision.revision}",
                [PreconditionViolation("REVISION", rev.workflow_id, "older than the active one")],
            )
        await self.ledger.save_revision(
            ActiveRevision(
                tenant_id=rev.tenant_id,
                workflow_id=rev.workflow_id,
                revision=rev.revision,
                object_type=rev.definition.object_type,
                enabled=True,
                definition=rev.model_dump(mode="json"),
                published_at=rev.published_at,
                updated_at=now,
            )
        )
        if needs_recheck(cw):
            # time-relative criteria: records crossing a boundary from now on enroll (the
            # ones matching already are the backfill's, when asked for)
            await self.ledger.set_recheck_watermark(
                tenant_id=rev.tenant_id,
                workflow_id=rev.workflow_id,
                revision=rev.revision,
                checked_until=now,
            )
        self.index.put(cw)
        schedule_ids = await self.sync_schedules(cw)
        backfill_id = ""
        if enroll_existing and self.start_backfill is not None:
            backfill_id = await self.start_backfill(cw)
        return backfill_id, schedule_ids

    async def deactivate(
        self, tenant_id: str, workflow_id: str, *, unenroll_existing: bool, now: datetime
    ) -> int:
        """Turn off: nothing new enrolls, schedules pause; optionally unenroll everyone."""
        cw = self.get(tenant_id, workflow_id)
        await self.ledger.set_enabled(tenant_id, workflow_id, False, now)
        off = compile_revision(cw.revision, enabled=False)
        self.index.put(off)
        await self.sync_schedules(off)
        n = 0
        if unenroll_existing:
            while rows := await self.ledger.active_in_workflow(
                tenant_id=tenant_id, workflow_id=workflow_id, limit=500
            ):
                for row in rows:
                    await self.enroller.unenroll_row(row, UnenrollReason.WORKFLOW_TURNED_OFF)
                    n += 1
        return n
