"""Activities of the enrollment worker: they run inside the service, next to the index.

Each page is idempotent: enrolling goes through the ledger (an enrolled record is
"already_enrolled" the second time), so a page retried after a crash enrolls nobody twice.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from temporalio import activity

from crmflow.criteria.values import as_datetime
from crmflow.model.criteria import Conjunction, FilterGroup, PropertyFilter
from crmflow.model.enrollment import UnenrollReason
from crmflow.model.triggers import ScheduleFrequency, ScheduleTrigger
from crmflow.records.port import RecordStore
from enrollment.compiled import EMPTY, CompiledWorkflow
from enrollment.config import EnrollmentConfig
from enrollment.enroller import Enroller
from enrollment.payloads import PageInput, PageResult, RecheckWindow
from enrollment.time_recheck import leaving_rules, needs_recheck, recheck_search, recheck_triggers
from enrollment.trigger_index import TriggerIndex

log = logging.getLogger("crmflow.enrollment.activities")


def backfill_criteria(cw: CompiledWorkflow) -> FilterGroup | None:
    """Records the criteria triggers enroll (None: the workflow has none to backfill)."""
    groups = [t.criteria.filter for t in cw.definition.enrollment.triggers if t.criteria]
    if not groups:
        return None
    return groups[0] if len(groups) == 1 else FilterGroup(conjunction=Conjunction.OR, groups=groups)


def record_date(value: Any, tz: ZoneInfo) -> date | None:
    """The calendar date of a date/datetime property value in the workflow's time zone."""
    if isinstance(value, str) and len(value) == 10:
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    dt = as_datetime(value)
    return dt.astimezone(tz).date() if dt else None


def schedule_search(trig: ScheduleTrigger, day: date) -> FilterGroup | None:
    """What to ask the CRM for at a tick (date-property: a window around the record's day)."""
    base = trig.filter
    if trig.frequency != ScheduleFrequency.DATE_PROPERTY:
        return base
    lo = (day - timedelta(days=1)).isoformat()
    hi = (day + timedelta(days=2)).isoformat()
    window = PropertyFilter(property=trig.date_property, operator="between", values=[lo, hi])
    if base is None:
        return FilterGroup(filters=[window])
    return FilterGroup(filters=[window], groups=[base])


class EnrollmentActivities:
    def __init__(
        self,
        *,
        index: TriggerIndex,
        enroller: Enroller,
        records: RecordStore | None,
        config: EnrollmentConfig,
    ) -> None:
        self.index = index
        self.enroller = enroller
        self.records = records
        self.config = config

    def _active(self, inp: PageInput) -> CompiledWorkflow | None:
        cw = self.index.get(inp.tenant_id, inp.workflow_id)
        if cw is None or not cw.enabled or cw.revision.revision != inp.revision:
            return None
        return cw

    @activity.defn(name="enrollment.backfill_page")
    async def backfill_page(self, inp: PageInput) -> PageResult:
        cw = self._active(inp)
        group = backfill_criteria(cw) if cw else None
        if cw is None or group is None or self.records is None:
            return PageResult(stale=True)
        # the CRM cannot search "has been enrolled in": a wider search, confirmed below
        page = await self.records.search(
            inp.tenant_id,
            cw.object_type,
            group.without_enrollment_filters(),
            limit=inp.page_size,
            cursor=inp.cursor,
        )
        res = PageResult(next_cursor=page.next_cursor, scanned=len(page.records))
        now = self.enroller.clock()
        records = await self.enroller.enrich(cw, {r.record_id: r.properties for r in page.records})
        for rid, props in records.items():
            activity.heartbeat(rid)
            if not any(
                m(props, now, EMPTY)
                for (role, _), (_, m) in cw.criteria.items()
                if role == "enroll"
            ):
                res.skipped += 1
                continue
            out = await self.enroller.enroll(
                cw, rid, trigger="backfill", record=props, reenroll_ok=False
            )
            if out.outcome == "enrolled":
                res.enrolled += 1
            else:
                res.skipped += 1
        return res

    @activity.defn(name="enrollment.schedule_page")
    async def schedule_page(self, inp: PageInput) -> PageResult:
        cw = self._active(inp)
        if cw is None or self.records is None:
            return PageResult(stale=True)
        triggers = cw.definition.enrollment.triggers
        if (
            not 0 <= inp.trigger_index < len(triggers)
            or triggers[inp.trigger_index].schedule is None
        ):
            return PageResult(stale=True)
        trig = triggers[inp.trigger_index].schedule
        assert trig is not None
        tz = ZoneInfo(cw.definition.settings.time_zone)
        fired = (inp.fired_at or datetime.now(tz)).astimezone(tz)
        # date-property: a record whose date + offset is today enrolls today
        target = fired.date() - timedelta(days=trig.offset_days)
        search = schedule_search(trig, target)
        page = await self.records.search(
            inp.tenant_id,
            cw.object_type,
            search.without_enrollment_filters() if search is not None else None,
            limit=inp.page_size or 200,
            cursor=inp.cursor,
        )
        res = PageResult(next_cursor=page.next_cursor, scanned=len(page.records))
        reenroll = cw.definition.enrollment.reenrollment.enabled
        from crmflow.criteria import compile_group

        check = compile_group(trig.filter) if trig.filter else None
        records = await self.enroller.enrich(cw, {r.record_id: r.properties for r in page.records})
        for rid, props in records.items():
            activity.heartbeat(rid)
            if check is not None and not check(props, fired, EMPTY):
                res.skipped += 1
                continue
            if trig.frequency == ScheduleFrequency.DATE_PROPERTY and (
                record_date(props.get(trig.date_property), tz) != target
            ):
                res.skipped += 1
                continue
            out = await self.enroller.enroll(
                cw,
                rid,
                trigger=f"schedule#{inp.trigger_index}",
                record=props,
                reenroll_ok=reenroll,
            )
            res.enrolled += out.outcome == "enrolled"
            res.skipped += out.outcome != "enrolled"
        return res

    @activity.defn(name="enrollment.time_recheck_start")
    async def time_recheck_start(self, inp: PageInput) -> RecheckWindow:
        """The instant of the previous complete check (set at activation). A revision without
        one (activated before this existed) starts its watermark now and enrolls nobody."""
        cw = self._active(inp)
        if cw is None or not needs_recheck(cw) or inp.fired_at is None:
            return RecheckWindow()
        ledger = self.enroller.ledger
        since = await ledger.recheck_watermark(
            tenant_id=inp.tenant_id, workflow_id=inp.workflow_id, revision=inp.revision
        )
        if since is None:
            await ledger.set_recheck_watermark(
                tenant_id=inp.tenant_id,
                workflow_id=inp.workflow_id,
                revision=inp.revision,
                checked_until=inp.fired_at,
            )
            return RecheckWindow()
        if since >= inp.fired_at:
            return RecheckWindow()
        return RecheckWindow(
            since=since, enrolling=bool(recheck_triggers(cw)), leaving=bool(leaving_rules(cw))
        )

    @activity.defn(name="enrollment.time_recheck_page")
    async def time_recheck_page(self, inp: PageInput) -> PageResult:
        """Enroll the page's records whose criteria did not match at ``since`` and match at
        ``fired_at`` (values as the CRM has them now: a change since was an event's job)."""
        cw = self._active(inp)
        if cw is None or self.records is None or inp.since is None or inp.fired_at is None:
            return PageResult(stale=True)
        since, now = inp.since, inp.fired_at
        search = recheck_search(cw, since, now)
        if search is None:
            return PageResult(stale=True)
        page = await self.records.search(
            inp.tenant_id, cw.object_type, search, limit=inp.page_size, cursor=inp.cursor
        )
        res = PageResult(next_cursor=page.next_cursor, scanned=len(page.records))
        records = await self.enroller.enrich(cw, {r.record_id: r.properties for r in page.records})
        keys = sorted(recheck_triggers(cw), key=lambda k: k[0] != "enroll")
        for rid, props in records.items():
            activity.heartbeat(rid)
            hit = next(
                (
                    (role, i)
                    for role, i in keys
                    if (m := cw.criteria[(role, i)][1])(props, now, EMPTY)
                    and not m(props, since, EMPTY)
                ),
                None,
            )
            if hit is None:
                res.skipped += 1
                continue
            role, i = hit
            out = await self.enroller.enroll(
                cw,
                rid,
                trigger=f"criteria#{i} (time)",
                record=props,
                reenroll_ok=cw.may_reenroll(role, i)
                and cw.initial_triggers_match(None, props, now),
                reenrollment_only=role == "reenroll",
                # a retried page gives the same answer instead of enrolling again
                dedupe_id=f"time-recheck:{now.isoformat()}",
            )
            res.enrolled += out.outcome == "enrolled"
            res.skipped += out.outcome != "enrolled"
        return res

    @activity.defn(name="enrollment.time_recheck_leaving_page")
    async def time_recheck_leaving_page(self, inp: PageInput) -> PageResult:
        """The workflow's enrolled records whose goal / unenrollment criteria time made true,
        or whose enrollment criteria time made false (when so set): unenrolled."""
        cw = self._active(inp)
        if cw is None or self.records is None or inp.since is None or inp.fired_at is None:
            return PageResult(stale=True)
        rules = leaving_rules(cw)
        if not rules:
            return PageResult(stale=True)
        since, now = inp.since, inp.fired_at
        rows = await self.enroller.ledger.active_in_workflow(
            tenant_id=inp.tenant_id,
            workflow_id=inp.workflow_id,
            limit=inp.page_size,
            after_id=int(inp.cursor or 0),
        )
        res = PageResult(scanned=len(rows))
        if len(rows) == inp.page_size:
            res.next_cursor = str(rows[-1].id)
        found = await self.records.batch_get(
            inp.tenant_id, cw.object_type, [r.record_id for r in rows]
        )
        records = await self.enroller.enrich(cw, {r.record_id: r.properties for r in found})
        for row in rows:
            props = records.get(row.record_id)
            if props is None:
                continue  # deleted: the deletion event unenrolls it
            activity.heartbeat(row.record_id)
            for role, i, m, rising in rules:
                flipped = (
                    m(props, now, EMPTY) and not m(props, since, EMPTY)
                    if rising
                    else m(props, since, EMPTY) and not m(props, now, EMPTY)
                )
                if flipped:
                    reason = {
                        "goal": UnenrollReason.GOAL_MET,
                        "unenroll": UnenrollReason.UNENROLLMENT_TRIGGER,
                        "stay": UnenrollReason.CRITERIA_NOT_MET,
                    }[role]
                    label = "goal" if role == "goal" else f"{role}#{i}" if i >= 0 else role
                    out = await self.enroller.unenroll_row(row, reason, f"{label} (time)")
                    res.unenrolled += out.outcome == "unenrolled"
                    break
        return res

    @activity.defn(name="enrollment.time_recheck_done")
    async def time_recheck_done(self, inp: PageInput) -> None:
        cw = self._active(inp)
        if cw is None or inp.fired_at is None:
            return
        await self.enroller.ledger.set_recheck_watermark(
            tenant_id=inp.tenant_id,
            workflow_id=inp.workflow_id,
            revision=inp.revision,
            checked_until=inp.fired_at,
        )

    @activity.defn(name="enrollment.prune")
    async def prune(self) -> dict[str, int]:
        now = self.enroller.clock()
        c = self.config.cutoffs()
        return await self.enroller.ledger.prune(
            history_before=now - c["history"],
            facts_before=now - c["facts"],
            events_before=now - c["events"],
        )

    @activity.defn(name="enrollment.recover")
    async def recover(self) -> int:
        from enrollment.runtime import RECOVERY_AGE, recover_pending

        return await recover_pending(self.enroller, self.index, age=RECOVERY_AGE)

    def all(self) -> list[Any]:
        return [
            self.backfill_page,
            self.schedule_page,
            self.time_recheck_start,
            self.time_recheck_page,
            self.time_recheck_leaving_page,
            self.time_recheck_done,
            self.prune,
            self.recover,
        ]
