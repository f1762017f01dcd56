"""Time-relative criteria re-checked on a schedule: records crossing a boundary because time
passed enroll once, through the rules; records that matched already at the last check do not."""

from __future__ import annotations

from datetime import datetime, timedelta

from enrollment.activities import EnrollmentActivities
from enrollment.config import EnrollmentConfig
from enrollment.payloads import PageInput, PageResult
from enrollment.time_recheck import crossing_window, recheck_search, recheck_triggers
from temporalio.testing import ActivityEnvironment

from crmflow.criteria import evaluate
from crmflow.model.criteria import FilterGroup, PropertyFilter
from crmflow.records.port import PropertyDefinition, PropertyType
from tests.unit.enrollment.conftest import T0, Core

DAY = timedelta(days=1)
STALE = {"property": "last_activity", "operator": "more_than_days_ago", "value": 7}
LEAD = {"property": "lifecyclestage", "operator": "eq", "value": "lead"}


async def crm(core: Core, **dates: datetime) -> None:
    await core.records.define_property(
        core.tenant,
        PropertyDefinition(object_type="contact", name="last_activity", type=PropertyType.DATETIME),
    )
    for rid, when in dates.items():
        await core.records.create(
            core.tenant,
            "contact",
            {"lifecyclestage": "lead", "last_activity": when.isoformat()},
            record_id=rid,
        )


async def recheck(core: Core, wf: str, at: datetime) -> list[PageResult]:
    """One scheduled run of EnrollmentTimeRecheck, its activities in order, at ``at``."""
    acts = EnrollmentActivities(
        index=core.index, enroller=core.enroller, records=core.records, config=EnrollmentConfig()
    )
    env = ActivityEnvironment()
    core.clock[0] = at
    cw = core.index.get(core.tenant, wf)
    assert cw is not None
    inp = PageInput(
        tenant_id=core.tenant,
        workflow_id=wf,
        revision=cw.revision.revision,
        fired_at=at,
        page_size=2,
    )
    window = await env.run(acts.time_recheck_start, inp)
    if window.since is None:
        return []
    inp.since = window.since
    pages = []
    for fn, wanted in (
        (acts.time_recheck_page, window.enrolling),
        (acts.time_recheck_leaving_page, window.leaving),
    ):
        inp.cursor = ""
        while wanted:
            res = await env.run(fn, inp)
            pages.append(res)
            if res.stale or not res.next_cursor:
                break
            inp.cursor = res.next_cursor
    await env.run(acts.time_recheck_done, inp)
    return pages


def enrolled(core: Core, wf: str = "wf") -> list[str]:
    return sorted(r.split("/")[3] for r in core.starter.runs if r.split("/")[2] == wf)


def test_crossing_windows_contain_every_crossing() -> None:
    since, now = T0, T0 + 2 * DAY
    for op, days in (("more_than_days_ago", 7), ("within_last_days", 3), ("within_next_days", 5)):
        f = PropertyFilter(property="d", operator=op, value=days)
        w = crossing_window(f, since, now)
        g = FilterGroup(filters=[f])
        # every value on an hourly grid that flips false -> true lies in the window
        for h in range(-24 * 20, 24 * 20):
            x = (T0 + timedelta(hours=h)).isoformat()
            flips = (
                evaluate(g, {"d": x}, now=now).matched
                and not evaluate(g, {"d": x}, now=since).matched
            )
            if flips:
                assert evaluate(FilterGroup(filters=[w]), {"d": x}, now=now).matched, (op, x)


async def test_records_crossing_the_boundary_enroll_once(core: Core) -> None:
    await crm(
        core,
        old=T0 - 30 * DAY,  # matched already when the workflow was turned on
        crossing=T0 - 6 * DAY,  # crosses at T0 + 1 day
        later=T0 - 1 * DAY,  # crosses at T0 + 6 days
        c4=T0 - 6 * DAY - timedelta(hours=12),
    )
    await core.publish("wf", {"triggers": [{"criteria": {"filter": {"filters": [STALE, LEAD]}}}]})
    cw = core.index.get(core.tenant, "wf")
    assert cw is not None and recheck_triggers(cw) == [("enroll", 0)]
    search = recheck_search(cw, T0, T0 + DAY)
    assert search is not None and not search.enrollment_workflows()

    pages = await recheck(core, "wf", T0 + 2 * DAY)
    assert enrolled(core) == ["contact-c4", "contact-crossing"]
    assert sum(p.enrolled for p in pages) == 2
    # the same tick again (a retried run): the same answer, no new start
    await core.ledger.set_recheck_watermark(
        tenant_id=core.tenant, workflow_id="wf", revision=1, checked_until=T0
    )
    starts = len(core.starter.starts)
    pages = await recheck(core, "wf", T0 + 2 * DAY)
    assert sum(p.enrolled for p in pages) == 0 and len(core.starter.starts) == starts
    # an hour later nothing new crossed
    assert (
        sum(p.enrolled for p in await recheck(core, "wf", T0 + 2 * DAY + timedelta(hours=1))) == 0
    )
    pages = await recheck(core, "wf", T0 + 7 * DAY)
    assert enrolled(core) == ["contact-c4", "contact-crossing", "contact-later"]
    assert "contact-old" not in str(core.starter.runs)


async def test_rules_still_apply(core: Core) -> None:
    await crm(core, a=T0 - 6 * DAY, b=T0 - 6 * DAY)
    goal = {"filters": [{"property": "firstname", "operator": "eq", "value": "Done"}]}
    await core.records.update(core.tenant, "contact", "b", {"firstname": "Done"})
    await core.publish(
        "wf", {"triggers": [{"criteria": {"filter": {"filters": [STALE]}}}], "goal": goal}
    )
    # a was enrolled by hand before: first time only
    await core.enroller.enroll(
        core.index.get(core.tenant, "wf"),  # type: ignore[arg-type]
        "a",
        trigger="manual",
        record={},
    )
    core.starter.finish_all()
    pages = await recheck(core, "wf", T0 + 2 * DAY)
    assert enrolled(core) == ["contact-a"] and sum(p.enrolled for p in pages) == 0
    # b meets the goal: not enrolled
    assert sum(p.skipped for p in pages) == 2


async def test_first_check_of_an_older_revision_only_sets_the_watermark(core: Core) -> None:
    await crm(core, a=T0 - 6 * DAY)
    await core.publish("wf", {"triggers": [{"criteria": {"filter": {"filters": [STALE]}}}]})
    # as if activated before time re-checks existed: no watermark
    await core.ledger.set_recheck_watermark(
        tenant_id=core.tenant, workflow_id="wf", revision=99, checked_until=T0
    )
    assert await recheck(core, "wf", T0 + 2 * DAY) == []
    assert (
        await core.ledger.recheck_watermark(tenant_id=core.tenant, workflow_id="wf", revision=1)
        == T0 + 2 * DAY
    )
    assert enrolled(core) == []


async def test_workflows_without_time_criteria_are_not_rechecked(core: Core) -> None:
    await core.publish("wf", {"triggers": [{"criteria": {"filter": {"filters": [LEAD]}}}]})
    cw = core.index.get(core.tenant, "wf")
    assert cw is not None and recheck_triggers(cw) == [] and recheck_search(cw, T0, T0) is None


async def test_time_makes_enrolled_records_leave(core: Core) -> None:
    recent = {"property": "last_activity", "operator": "within_last_days", "value": 10}
    await crm(core, a=T0 - 2 * DAY, b=T0 - 5 * DAY, c=T0 - 9 * DAY)
    await core.publish(
        "wf",
        {
            "triggers": [{"criteria": {"filter": {"filters": [LEAD, recent]}}}],
            "unenroll_when_criteria_not_met": True,
        },
    )
    cw = core.index.get(core.tenant, "wf")
    assert cw is not None
    for rid in ("a", "b", "c"):
        await core.enroller.enroll(cw, rid, trigger="manual", record={})
    # at T0 + 3 days c's activity is 12 days old: "criteria no longer met" -> unenrolled
    pages = await recheck(core, "wf", T0 + 3 * DAY)
    assert sum(p.unenrolled for p in pages) == 1
    assert core.starter.signals == [(f"enroll/{core.tenant}/wf/contact-c/1", "criteria_not_met")]
    pages = await recheck(core, "wf", T0 + 6 * DAY)
    assert [s[0].split("/")[3] for s in core.starter.signals] == ["contact-c", "contact-b"]
    assert sum(p.unenrolled for p in pages) == 1 and sum(p.scanned for p in pages) == 2


async def test_time_makes_the_goal_met(core: Core) -> None:
    soon = {"property": "last_activity", "operator": "within_next_days", "value": 3}
    await crm(core, a=T0 + 4 * DAY, b=T0 + 30 * DAY)
    await core.publish(
        "wf",
        {
            "triggers": [{"criteria": {"filter": {"filters": [LEAD]}}}],
            "goal": {"filters": [soon]},
        },
    )
    cw = core.index.get(core.tenant, "wf")
    assert cw is not None
    for rid in ("a", "b"):
        await core.enroller.enroll(cw, rid, trigger="manual", record={})
    assert await recheck(core, "wf", T0 + 12 * 3600 * timedelta(seconds=1)) != []
    assert core.starter.signals == []
    await recheck(core, "wf", T0 + 2 * DAY)  # a's date is within 3 days now
    assert core.starter.signals == [(f"enroll/{core.tenant}/wf/contact-a/1", "goal_met")]
