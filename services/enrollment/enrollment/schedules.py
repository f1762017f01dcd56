"""Temporal Schedules for schedule triggers (one per trigger), the time re-check of
time-relative criteria (one per workflow that has them) and the daily maintenance job.

A schedule fires ``EnrollmentScheduleTick`` on ``crmflow-enrollment`` in the workflow's time
zone; it is paused while the workflow is off and deleted when a new revision drops the trigger.
Date-property schedules tick daily at ``time_of_day``; the tick enrolls the records whose date
(+ offset) is that day.
"""

from __future__ import annotations

import logging
from datetime import UTC, timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from crmflow.model.triggers import ScheduleFrequency, ScheduleTrigger
from enrollment.compiled import CompiledWorkflow
from enrollment.payloads import ScheduleTickInput, TimeRecheckInput
from enrollment.time_recheck import needs_recheck

log = logging.getLogger("crmflow.enrollment.schedules")

MAINTENANCE_SCHEDULE_ID = "crmflow-enrollment-maintenance"


def schedule_id(tenant_id: str, workflow_id: str, index: int) -> str:
    return f"enroll-schedule/{tenant_id}/{workflow_id}/{index}"


def recheck_schedule_id(tenant_id: str, workflow_id: str) -> str:
    return f"enroll-recheck/{tenant_id}/{workflow_id}"


def _r(*values: int) -> list[ScheduleRange]:
    return [ScheduleRange(v) for v in values]


def calendar(t: ScheduleTrigger) -> ScheduleCalendarSpec:
    """The trigger as a calendar spec (read in the schedule's time zone)."""
    if t.frequency == ScheduleFrequency.ONCE:
        assert t.at is not None
        at = t.at.astimezone(UTC)
        return ScheduleCalendarSpec(
            second=_r(at.second),
            minute=_r(at.minute),
            hour=_r(at.hour),
            day_of_month=_r(at.day),
            month=_r(at.month),
            year=_r(at.year),
        )
    hh, _, mm = t.time_of_day.partition(":")
    minute, hour = _r(int(mm)), _r(int(hh))
    if t.frequency == ScheduleFrequency.WEEKLY:
        # ours: 1 = Monday .. 7 = Sunday; Temporal: 0 = Sunday .. 6
        return ScheduleCalendarSpec(
            minute=minute, hour=hour, day_of_week=_r(*sorted(d % 7 for d in t.days_of_week))
        )
    if t.frequency == ScheduleFrequency.MONTHLY:
        return ScheduleCalendarSpec(minute=minute, hour=hour, day_of_month=_r(t.day_of_month))
    if t.frequency == ScheduleFrequency.ANNUALLY:
        return ScheduleCalendarSpec(
            minute=minute, hour=hour, day_of_month=_r(t.day_of_month), month=_r(t.month)
        )
    return ScheduleCalendarSpec(minute=minute, hour=hour)  # DAILY and DATE_PROPERTY


def build(cw: CompiledWorkflow, index: int, t: ScheduleTrigger, task_queue: str) -> Schedule:
    tz = cw.definition.settings.time_zone
    # a one-time instant is absolute; everything else is wall-clock in the workflow's zone
    zone = "UTC" if t.frequency == ScheduleFrequency.ONCE else tz
    spec_cal = calendar(t)
    return Schedule(
        action=ScheduleActionStartWorkflow(
            "EnrollmentScheduleTick",
            ScheduleTickInput(
                tenant_id=cw.tenant_id,
                workflow_id=cw.workflow_id,
                revision=cw.revision.revision,
                trigger_index=index,
            ),
            id=f"schedule-tick/{cw.tenant_id}/{cw.workflow_id}/{index}",
            task_queue=task_queue,
        ),
        spec=ScheduleSpec(calendars=[spec_cal], time_zone_name=zone),
        policy=SchedulePolicy(
            overlap=ScheduleOverlapPolicy.SKIP, catchup_window=timedelta(hours=1)
        ),
        state=ScheduleState(paused=not cw.enabled, note="" if cw.enabled else "workflow is off"),
    )


def build_recheck(cw: CompiledWorkflow, every: timedelta, task_queue: str) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            "EnrollmentTimeRecheck",
            TimeRecheckInput(
                tenant_id=cw.tenant_id, workflow_id=cw.workflow_id, revision=cw.revision.revision
            ),
            id=f"time-recheck/{cw.tenant_id}/{cw.workflow_id}",
            task_queue=task_queue,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        # a missed tick is not lost: the next one covers everything since the watermark
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(paused=not cw.enabled, note="" if cw.enabled else "workflow is off"),
    )


class Schedules:
    def __init__(
        self, client: Client, task_queue: str, recheck_every: timedelta = timedelta(hours=1)
    ) -> None:
        self.client = client
        self.task_queue = task_queue
        self.recheck_every = recheck_every
        self._known: dict[tuple[str, str], int] = {}

    async def sync(self, cw: CompiledWorkflow) -> list[str]:
        """Create/update this revision's schedules (paused when off); drop removed ones."""
        ids = []
        triggers = cw.definition.enrollment.triggers
        for i, t in enumerate(triggers):
            if t.schedule is None:
                await self._delete(schedule_id(cw.tenant_id, cw.workflow_id, i))
                continue
            sid = schedule_id(cw.tenant_id, cw.workflow_id, i)
            await self._upsert(sid, build(cw, i, t.schedule, self.task_queue))
            ids.append(sid)
        previous = self._known.get((cw.tenant_id, cw.workflow_id), 0)
        for i in range(len(triggers), previous):
            await self._delete(schedule_id(cw.tenant_id, cw.workflow_id, i))
        self._known[(cw.tenant_id, cw.workflow_id)] = len(triggers)
        rid = recheck_schedule_id(cw.tenant_id, cw.workflow_id)
        if needs_recheck(cw):
            await self._upsert(rid, build_recheck(cw, self.recheck_every, self.task_queue))
            ids.append(rid)
        else:
            await self._delete(rid)
        return ids

    def remember(self, cw: CompiledWorkflow) -> None:
        """Note a loaded revision's trigger count (so a later revision can drop extras)."""
        self._known[(cw.tenant_id, cw.workflow_id)] = len(cw.definition.enrollment.triggers)

    async def _upsert(self, sid: str, schedule: Schedule) -> None:
        try:
            await self.client.create_schedule(sid, schedule)
        except ScheduleAlreadyRunningError:

            def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
                return ScheduleUpdate(schedule=schedule)

            await self.client.get_schedule_handle(sid).update(replace)

    async def _delete(self, sid: str) -> None:
        try:
            await self.client.get_schedule_handle(sid).delete()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise

    async def ensure_maintenance(self, hour: int) -> None:
        """The daily retention + recovery job (created once, kept if it exists)."""
        schedule = Schedule(
            action=ScheduleActionStartWorkflow(
                "EnrollmentMaintenance",
                id="crmflow-enrollment-maintenance-run",
                task_queue=self.task_queue,
            ),
            spec=ScheduleSpec(calendars=[ScheduleCalendarSpec(hour=_r(hour))]),
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        )
        try:
            await self.client.create_schedule(MAINTENANCE_SCHEDULE_ID, schedule)
        except ScheduleAlreadyRunningError:
            pass
