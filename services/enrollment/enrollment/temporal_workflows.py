"""The enrollment service's own Temporal workflows (task queue ``crmflow-enrollment``).

* ``EnrollExistingRecords`` — the durable backfill on publish: pages through the CRM in
  activities (each page enrolls idempotently through the ledger), keeps its progress in the
  workflow state (query ``progress``; current details, memo and the CrmflowStatus search
  attribute for the Temporal UI) and continues as new every N pages. A worker crash retries the
  page in flight; pages already done are never redone, enrollments never duplicate.
* ``EnrollmentScheduleTick`` — started by a Temporal Schedule per schedule trigger; enrolls the
  records matching the trigger at that tick.
* ``EnrollmentTimeRecheck`` — started by a revision's time re-check schedule; enrolls the
  records whose time-relative criteria started to match since the previous check (see
  ``time_recheck.py``).
* ``EnrollmentMaintenance`` — started by a daily schedule: ledger retention and the recovery
  sweep.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributePair, TypedSearchAttributes

with workflow.unsafe.imports_passed_through():
    from crmflow.temporal import search_attributes as sa
    from crmflow.temporal.ids import BACKFILL_WORKFLOW_TYPE
    from enrollment.payloads import (
        BackfillInput,
        BackfillProgress,
        MaintenanceResult,
        PageInput,
        PageResult,
        RecheckWindow,
        ScheduleTickInput,
        TickResult,
        TimeRecheckInput,
    )

PAGE_TIMEOUT = timedelta(minutes=5)
RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))
QUERY_PROGRESS = "progress"


@workflow.defn(name=BACKFILL_WORKFLOW_TYPE)
class EnrollExistingRecords:
    def __init__(self) -> None:
        self.state: BackfillInput | None = None
        self.done = False

    @workflow.run
    async def run(self, inp: BackfillInput) -> BackfillProgress:
        self.state = s = inp.model_copy()
        for _ in range(s.pages_per_run):
            res: PageResult = await workflow.execute_activity(
                "enrollment.backfill_page",
                PageInput(
                    tenant_id=s.tenant_id,
                    workflow_id=s.workflow_id,
                    revision=s.revision,
                    cursor=s.cursor,
                    page_size=s.page_size,
                ),
                result_type=PageResult,
                start_to_close_timeout=PAGE_TIMEOUT,
                retry_policy=RETRY,
            )
            s.scanned += res.scanned
            s.enrolled += res.enrolled
            s.skipped += res.skipped
            s.pages += 1
            s.cursor = res.next_cursor
            self.done = res.stale or not res.next_cursor
            self._publish()
            if self.done:
                return self.progress()
        workflow.continue_as_new(s)

    def _publish(self) -> None:
        """Progress where people look: the UI's current details, the memo, a search attribute."""
        s = self.state
        assert s is not None
        text = f"scanned {s.scanned}, enrolled {s.enrolled}, skipped {s.skipped}, pages {s.pages}"
        workflow.set_current_details(("done: " if self.done else "running: ") + text)
        workflow.upsert_memo({"progress": self.progress().model_dump(mode="json")})
        workflow.upsert_search_attributes(
            [sa.STATUS.value_set("backfill_done" if self.done else "backfill_running")]
        )

    @workflow.query(name=QUERY_PROGRESS)
    def progress(self) -> BackfillProgress:
        s = self.state
        assert s is not None
        return BackfillProgress(
            tenant_id=s.tenant_id,
            workflow_id=s.workflow_id,
            revision=s.revision,
            scanned=s.scanned,
            enrolled=s.enrolled,
            skipped=s.skipped,
            pages=s.pages,
            done=self.done,
        )


def backfill_search_attributes(inp: BackfillInput) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(sa.TENANT_ID, inp.tenant_id),
            SearchAttributePair(sa.WORKFLOW_ID, inp.workflow_id),
            SearchAttributePair(sa.REVISION, inp.revision),
            SearchAttributePair(sa.STATUS, "backfill_running"),
        ]
    )


@workflow.defn(name="EnrollmentScheduleTick")
class EnrollmentScheduleTick:
    @workflow.run
    async def run(self, inp: ScheduleTickInput) -> TickResult:
        total = TickResult()
        cursor = ""
        fired_at = workflow.now()
        while True:
            res: PageResult = await workflow.execute_activity(
                "enrollment.schedule_page",
                PageInput(
                    tenant_id=inp.tenant_id,
                    workflow_id=inp.workflow_id,
                    revision=inp.revision,
                    cursor=cursor,
                    trigger_index=inp.trigger_index,
                    fired_at=fired_at,
                ),
                result_type=PageResult,
                start_to_close_timeout=PAGE_TIMEOUT,
                retry_policy=RETRY,
            )
            total.scanned += res.scanned
            total.enrolled += res.enrolled
            total.skipped += res.skipped
            workflow.set_current_details(f"scanned {total.scanned}, enrolled {total.enrolled}")
            if res.stale or not res.next_cursor:
                return total
            cursor = res.next_cursor


@workflow.defn(name="EnrollmentTimeRecheck")
class EnrollmentTimeRecheck:
    @workflow.run
    async def run(self, inp: TimeRecheckInput) -> TickResult:
        fired_at = workflow.now()
        page = PageInput(
            tenant_id=inp.tenant_id,
            workflow_id=inp.workflow_id,
            revision=inp.revision,
            fired_at=fired_at,
        )
        window: RecheckWindow = await workflow.execute_activity(
            "enrollment.time_recheck_start",
            page,
            result_type=RecheckWindow,
            start_to_close_timeout=PAGE_TIMEOUT,
            retry_policy=RETRY,
        )
        total = TickResult()
        if window.since is None:
            return total
        page.since = window.since
        for name, wanted in (
            ("enrollment.time_recheck_page", window.enrolling),
            ("enrollment.time_recheck_leaving_page", window.leaving),
        ):
            page.cursor = ""
            while wanted:
                res: PageResult = await workflow.execute_activity(
                    name,
                    page,
                    result_type=PageResult,
                    start_to_close_timeout=PAGE_TIMEOUT,
                    retry_policy=RETRY,
                )
                total.scanned += res.scanned
                total.enrolled += res.enrolled
                total.skipped += res.skipped
                total.unenrolled += res.unenrolled
                workflow.set_current_details(
                    f"scanned {total.scanned}, enrolled {total.enrolled}, "
                    f"unenrolled {total.unenrolled}"
                )
                if res.stale:
                    return total
                if not res.next_cursor:
                    break
                page.cursor = res.next_cursor
        # only a complete pass moves the watermark: a failed one is redone from the same instant
        await workflow.execute_activity(
            "enrollment.time_recheck_done",
            page,
            start_to_close_timeout=PAGE_TIMEOUT,
            retry_policy=RETRY,
        )
        return total


@workflow.defn(name="EnrollmentMaintenance")
class EnrollmentMaintenance:
    @workflow.run
    async def run(self) -> MaintenanceResult:
        pruned: dict[str, int] = await workflow.execute_activity(
            "enrollment.prune",
            start_to_close_timeout=PAGE_TIMEOUT,
            retry_policy=RETRY,
            result_type=dict,
        )
        recovered: int = await workflow.execute_activity(
            "enrollment.recover",
            start_to_close_timeout=PAGE_TIMEOUT,
            retry_policy=RETRY,
            result_type=int,
        )
        return MaintenanceResult(pruned=pruned, recovered=recovered)


WORKFLOWS = [
    EnrollExistingRecords,
    EnrollmentScheduleTick,
    EnrollmentTimeRecheck,
    EnrollmentMaintenance,
]
