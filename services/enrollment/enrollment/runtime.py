"""Background parts of the service: the recovery sweep, its Temporal worker and schedules.

Kept apart from ``main`` so the composition root stays a list of parts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.worker import Worker

from crmflow.records.port import RecordStore
from crmflow.settings import Settings
from crmflow.temporal.ids import BACKFILL_WORKFLOW_TYPE, backfill_workflow_id
from enrollment.activities import EnrollmentActivities
from enrollment.compiled import CompiledWorkflow
from enrollment.config import EnrollmentConfig
from enrollment.ended_runs import EndedRuns
from enrollment.enroller import Enroller
from enrollment.ingest import Ingestor
from enrollment.ledger import Ledger
from enrollment.payloads import BackfillInput
from enrollment.review import Review
from enrollment.schedules import Schedules
from enrollment.temporal_workflows import WORKFLOWS, backfill_search_attributes
from enrollment.trigger_index import TriggerIndex
from enrollment.workflows import ActiveWorkflows

log = logging.getLogger("crmflow.enrollment.runtime")

# A pending ledger row older than this is assumed orphaned by a crash and started again.
RECOVERY_AGE = timedelta(seconds=30)
RECOVERY_EVERY = 15.0


async def recover_pending(enroller: Enroller, index: TriggerIndex, *, age: timedelta) -> int:
    """Start the workflow of every ledger row left pending (same id: never a duplicate)."""
    started = 0
    rows = await enroller.ledger.pending_before(enroller.clock() - age)
    for row in rows:
        cw = index.get(row.tenant_id, row.workflow_id)
        if cw is None:
            continue
        if cw.revision.revision != row.revision:
            log.info(
                "recovering %s with revision %d (was %d)",
                row.run_workflow_id,
                cw.revision.revision,
                row.revision,
            )
        if await enroller.start_row(row, cw):
            started += 1
    return started


async def replay_fact_changes(
    enroller: Enroller, *, age: timedelta, tenant_id: str | None = None
) -> int:
    """Run the cascade of every outbox change older than ``age`` (an unenrollment or ended
    run whose cascade a crash lost). Idempotent: the synthetic event has the change's id (a
    finished cascade is a duplicate) and what a partial one enrolled is found by that event
    id (``already_enrolled``), so a replay never enrolls twice. ``tenant_id``: only that
    tenant's changes (the recovery loop replays all)."""
    done = 0
    pending = await enroller.ledger.pending_fact_changes(
        enroller.clock() - age, tenant_id=tenant_id
    )
    for change in pending:
        try:
            await enroller.emit(change, None)
        except Exception:
            log.exception("replaying %s failed; kept for the next sweep", change.change_id)
            continue
        done += 1
    return done


@dataclass
class Runtime:
    settings: Settings
    client: Client
    ledger: Ledger
    index: TriggerIndex
    enroller: Enroller
    workflows: ActiveWorkflows
    ingestor: Ingestor
    records: RecordStore | None
    task_queue: str
    config: EnrollmentConfig = field(default_factory=EnrollmentConfig)
    review: Review | None = None
    schedules: Schedules | None = None
    worker: Worker | None = None
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    async def wire(self) -> None:
        """Connect hooks (schedules, backfill) before the revisions are loaded."""
        self.schedules = Schedules(
            self.client,
            self.task_queue,
            recheck_every=timedelta(minutes=self.config.time_recheck_minutes),
        )
        self.workflows.sync_schedules = self.schedules.sync
        self.workflows.start_backfill = self.start_backfill
        self.review = Review(
            workflows=self.workflows,
            enroller=self.enroller,
            records=self.records,
            client=self.client,
        )

    async def start_backfill(self, cw: CompiledWorkflow) -> str:
        """Start (idempotently) the EnrollExistingRecords run of this revision."""
        inp = BackfillInput(
            tenant_id=cw.tenant_id,
            workflow_id=cw.workflow_id,
            revision=cw.revision.revision,
            page_size=self.config.backfill_page_size,
            pages_per_run=self.config.backfill_pages_per_run,
        )
        wid = backfill_workflow_id(cw.tenant_id, cw.workflow_id, cw.revision.revision)
        try:
            await self.client.start_workflow(
                BACKFILL_WORKFLOW_TYPE,
                inp,
                id=wid,
                task_queue=self.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                search_attributes=backfill_search_attributes(inp),
                static_summary=f"enroll existing {cw.object_type} records in {cw.workflow_id}",
            )
        except WorkflowAlreadyStartedError:
            pass  # this revision's backfill already completed
        return wid

    async def start_background(self) -> None:
        assert self.schedules is not None
        for cw in self.index.workflows():
            self.schedules.remember(cw)
        acts = EnrollmentActivities(
            index=self.index, enroller=self.enroller, records=self.records, config=self.config
        )
        self.worker = Worker(
            self.client, task_queue=self.task_queue, workflows=WORKFLOWS, activities=acts.all()
        )
        self._tasks.append(asyncio.create_task(self.worker.run(), name="enrollment-worker"))
        try:
            await self.schedules.ensure_maintenance(self.config.maintenance_hour)
        except Exception:  # e.g. a server without schedules: the sweep loop still runs
            log.exception("cannot create the maintenance schedule")
        self._tasks.append(asyncio.create_task(self._recovery_loop(), name="enrollment-recovery"))

    async def _recovery_loop(self) -> None:
        ended = EndedRuns(self.client, self.enroller, self.index)
        while True:
            try:
                n = await recover_pending(self.enroller, self.index, age=RECOVERY_AGE)
                if n:
                    log.warning("recovery sweep started %d orphaned enrollment(s)", n)
            except Exception:
                log.exception("recovery sweep failed")
            try:  # unenrollments / ended runs whose cascade a crash lost
                n = await replay_fact_changes(self.enroller, age=RECOVERY_AGE)
                if n:
                    log.warning("recovery sweep replayed %d enrollment fact change(s)", n)
            except Exception:
                log.exception("fact-change replay failed")
            try:  # "is currently enrolled in X" facts of runs that finished by themselves
                await ended.sweep()
            except Exception:
                log.exception("ended-runs sweep failed")
            await asyncio.sleep(RECOVERY_EVERY)

    async def stop(self) -> None:
        if self.worker is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.worker.shutdown(), 10)
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
