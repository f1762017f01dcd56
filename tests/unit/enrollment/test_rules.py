"""Enrollment rules and unenrollment: first time only, re-enrollment, never twice at once,
suppression, goals, stop matching, unenrollment triggers, deletion, other workflows, crash."""

from __future__ import annotations

import asyncio

from enrollment.runtime import recover_pending

from crmflow.model.enrollment import UnenrollReason
from crmflow.model.records import ChangeEventType
from tests.unit.enrollment.conftest import Core

LEAD = {"property": "lifecyclestage", "operator": "eq", "value": "lead"}
TRIG = {"criteria": {"filter": {"filters": [LEAD]}}}


def to_lead(core: Core, rid: str = "c1", **snap: object):  # type: ignore[no-untyped-def]
    return core.event(
        rid, {"lifecyclestage": ("subscriber", "lead")}, snapshot={"lifecyclestage": "lead", **snap}
    )


def away(core: Core, rid: str = "c1"):  # type: ignore[no-untyped-def]
    return core.event(
        rid, {"lifecyclestage": ("lead", "subscriber")}, snapshot={"lifecyclestage": "subscriber"}
    )


async def test_first_enrollment_only(core: Core) -> None:
    await core.publish("wf", {"triggers": [TRIG]})
    assert await core.ingest(to_lead(core)) == [("wf", "enrolled")]
    core.starter.finish_all()
    await core.ingest(away(core))
    assert await core.ingest(to_lead(core)) == [("wf", "reenrollment_off")]


async def test_reenrollment_needs_its_trigger_and_the_initial_criteria(core: Core) -> None:
    score = {"event": {"event_type": "EVENT_TYPE_PROPERTY_CHANGED", "property": "score"}}
    await core.publish(
        "wf", {"triggers": [TRIG, score], "reenrollment": {"enabled": True, "triggers": [score]}}
    )
    assert await core.ingest(to_lead(core)) == [("wf", "enrolled")]
    # while enrolled: never twice at once
    ev = core.event("c1", {"score": (1, 2)}, snapshot={"lifecyclestage": "lead", "score": 2})
    assert await core.ingest(ev) == [("wf", "already_enrolled")]
    core.starter.finish_all()
    # the criteria trigger is not a re-enrollment trigger
    await core.ingest(away(core))
    assert await core.ingest(to_lead(core)) == [("wf", "reenrollment_off")]
    # the re-enrollment trigger fires and the record meets the criteria: enrolled again
    ev = core.event("c1", {"score": (2, 3)}, snapshot={"lifecyclestage": "lead", "score": 3})
    assert await core.ingest(ev) == [("wf", "enrolled")]
    assert f"enroll/{core.tenant}/wf/contact-c1/2" in core.starter.runs
    core.starter.finish_all()
    # fires again but the record does not meet the initial triggers now... the score trigger
    # itself is an initial trigger, so it does: enrolled a third time
    ev = core.event("c1", {"score": (3, 4)}, snapshot={"lifecyclestage": "customer"})
    assert await core.ingest(ev) == [("wf", "enrolled")]


async def test_reenrollment_refused_when_initial_triggers_do_not_match(core: Core) -> None:
    score = {"event": {"event_type": "EVENT_TYPE_PROPERTY_CHANGED", "property": "score"}}
    await core.publish(
        "wf", {"triggers": [TRIG], "reenrollment": {"enabled": True, "triggers": [score]}}
    )
    # the re-enrollment trigger alone does not enroll a record the first time
    ev = core.event("c0", {"score": (1, 2)}, snapshot={"lifecyclestage": "lead"})
    assert await core.ingest(ev) == [("wf", "not_enrolled")]
    assert await core.ingest(to_lead(core)) == [("wf", "enrolled")]
    core.starter.finish_all()
    ev = core.event("c1", {"score": (1, 2)}, snapshot={"lifecyclestage": "customer"})
    assert await core.ingest(ev) == [("wf", "reenrollment_off")]
    ev = core.event("c1", {"score": (2, 3)}, snapshot={"lifecyclestage": "lead"})
    assert await core.ingest(ev) == [("wf", "enrolled")]


async def test_never_twice_at_once_under_concurrency(core: Core) -> None:
    await core.publish("wf", {"triggers": [{"manual": {}}], "reenrollment": {"enabled": True}})
    cw = core.workflows.get(core.tenant, "wf")
    outs = await asyncio.gather(
        *[
            core.enroller.enroll(cw, "r1", trigger="manual", record={}, reenroll_ok=True)
            for _ in range(10)
        ]
    )
    assert sorted(o.outcome for o in outs).count("enrolled") == 1
    assert len(core.starter.runs) == 1
    # a second service replica racing on the same ledger: the unique number refuses it
    row = await core.ledger.reserve(
        tenant_id=core.tenant,
        workflow_id="wf",
        revision=1,
        object_type="contact",
        record_id="r2",
        trigger="manual",
        event_id="",
        now=core.clock[0],
        run_id_for=lambda n: f"x/{n}",
    )
    assert row is not None
    from enrollment.tables import EnrollmentRow

    async with core.ledger.sessions() as s:
        s.add(
            EnrollmentRow(
                tenant_id=core.tenant,
                workflow_id="wf",
                revision=1,
                object_type="contact",
                record_id="r2",
                enrollment_number=1,
                enrolled_at=core.clock[0],
                run_workflow_id="x/1",
            )
        )
        try:
            await s.commit()
            raise AssertionError("a second enrollment number 1 was accepted")
        except Exception as exc:
            assert "UNIQUE" in str(exc).upper()


async def test_suppression_lists(core: Core) -> None:
    lst = await core.records.create_list(core.tenant, "no-marketing", "contact")
    await core.publish("wf", {"triggers": [TRIG], "suppression_list_ids": [lst.list_id]})
    await core.records.create(core.tenant, "contact", {"lifecyclestage": "lead"}, record_id="c1")
    await core.records.create(core.tenant, "contact", {"lifecyclestage": "lead"}, record_id="c2")
    await core.records.add_to_list(core.tenant, lst.list_id, ["c1"])
    assert await core.ingest(to_lead(core, "c1")) == [("wf", "suppressed")]
    assert await core.ingest(to_lead(core, "c2")) == [("wf", "enrolled")]
    # joining the suppression list unenrolls
    ev = core.event("c2", kind=ChangeEventType.LIST_MEMBERSHIP_ADDED, list_id=lst.list_id)
    assert await core.ingest(ev) == [("wf", "unenrolled")]
    assert core.starter.signals[-1][1] == UnenrollReason.SUPPRESSED.value


async def test_goal_blocks_enrollment_and_unenrolls(core: Core) -> None:
    goal = {"filters": [{"property": "deal_stage", "operator": "eq", "value": "won"}]}
    await core.publish("wf", {"triggers": [TRIG], "goal": goal})
    assert await core.ingest(to_lead(core, "c1", deal_stage="won")) == [("wf", "goal_met")]
    assert await core.ingest(to_lead(core, "c2")) == [("wf", "enrolled")]
    ev = core.event(
        "c2",
        {"deal_stage": (None, "won")},
        snapshot={"lifecyclestage": "lead", "deal_stage": "won"},
    )
    assert await core.ingest(ev) == [("wf", "unenrolled")]
    assert core.starter.signals == [
        (f"enroll/{core.tenant}/wf/contact-c2/1", UnenrollReason.GOAL_MET.value)
    ]


async def test_unenroll_when_criteria_no_longer_met(core: Core) -> None:
    await core.publish("wf", {"triggers": [TRIG], "unenroll_when_criteria_not_met": True})
    await core.publish("keep", {"triggers": [TRIG]})
    await core.ingest(to_lead(core))
    assert await core.ingest(away(core)) == [("wf", "unenrolled")]
    assert core.starter.signals[0][1] == UnenrollReason.CRITERIA_NOT_MET.value


async def test_unenrollment_trigger_and_deletion(core: Core) -> None:
    unsub = {
        "event": {
            "event_type": "EVENT_TYPE_PROPERTY_CHANGED",
            "property": "optout",
            "to_values": ["true"],
        }
    }
    await core.publish("wf", {"triggers": [TRIG], "unenrollment_triggers": [unsub]})
    await core.publish("other", {"triggers": [TRIG]})
    await core.ingest(to_lead(core, "c1"))
    await core.ingest(to_lead(core, "c2"))
    ev = core.event("c1", {"optout": (False, True)})
    assert await core.ingest(ev) == [("wf", "unenrolled")]
    gone = core.event("c2", kind=ChangeEventType.RECORD_DELETED)
    assert sorted(await core.ingest(gone)) == [("other", "unenrolled"), ("wf", "unenrolled")]
    assert {r for _, r in core.starter.signals} == {"unenrollment_trigger", "record_deleted"}


async def test_enrolling_here_unenrolls_from_other_workflows(core: Core) -> None:
    await core.publish("nurture", {"triggers": [{"manual": {}}]})
    await core.publish("sales", {"triggers": [TRIG], "unenroll_from_workflow_ids": ["nurture"]})
    cw = core.workflows.get(core.tenant, "nurture")
    await core.enroller.enroll(cw, "c1", trigger="manual", record={})
    assert await core.ingest(to_lead(core)) == [("sales", "enrolled")]
    assert core.starter.signals == [
        (f"enroll/{core.tenant}/nurture/contact-c1/1", UnenrollReason.ENROLLED_ELSEWHERE.value)
    ]


async def test_turned_off_workflow_enrolls_nothing(core: Core) -> None:
    await core.publish("wf", {"triggers": [TRIG]})
    await core.ingest(to_lead(core, "c1"))
    n = await core.workflows.deactivate(
        core.tenant, "wf", unenroll_existing=True, now=core.clock[0]
    )
    assert n == 1
    assert await core.ingest(to_lead(core, "c2")) == []
    cw = core.workflows.get(core.tenant, "wf")
    out = await core.enroller.enroll(cw, "c3", trigger="manual", record={})
    assert out.outcome == "workflow_off"
    # and a restart keeps it off
    from enrollment.trigger_index import TriggerIndex

    core.workflows.index = fresh = TriggerIndex()
    await core.workflows.load()
    again = fresh.get(core.tenant, "wf")
    assert again is not None and not again.enabled


async def test_crash_between_ledger_and_start_is_recovered_once(core: Core) -> None:
    await core.publish("wf", {"triggers": [TRIG]})
    core.starter.fail = True
    assert await core.ingest(to_lead(core)) == [("wf", "enrolled")]
    assert core.starter.runs == {}
    [row] = await core.ledger.active_for_record(
        tenant_id=core.tenant, object_type="contact", record_id="c1"
    )
    assert row.status == "pending"
    # while pending it counts as enrolled
    assert await core.ingest(to_lead(core)) == [("wf", "already_enrolled")]
    core.starter.fail = False
    core.tick(minutes=5)
    from datetime import timedelta

    assert await recover_pending(core.enroller, core.index, age=timedelta(seconds=30)) == 1
    assert await recover_pending(core.enroller, core.index, age=timedelta(seconds=30)) == 0
    assert list(core.starter.runs) == [f"enroll/{core.tenant}/wf/contact-c1/1"]


async def test_the_next_attempt_finishes_a_pending_start(core: Core) -> None:
    """A retried backfill page or redelivered event must not wait for the sweep."""
    await core.publish("wf", {"triggers": [TRIG]})
    core.starter.fail = True
    assert await core.ingest(to_lead(core)) == [("wf", "enrolled")]
    assert core.starter.runs == {}
    core.starter.fail = False
    cw = core.workflows.get(core.tenant, "wf")
    out = await core.enroller.enroll(cw, "c1", trigger="backfill", record={})
    assert out.outcome == "already_enrolled"
    assert list(core.starter.runs) == [f"enroll/{core.tenant}/wf/contact-c1/1"]
    [row] = await core.ledger.active_for_record(
        tenant_id=core.tenant, object_type="contact", record_id="c1"
    )
    assert row.status == "running"
    from datetime import timedelta

    core.tick(minutes=5)
    assert await recover_pending(core.enroller, core.index, age=timedelta(seconds=30)) == 0


async def test_retention_prunes_old_history_and_facts(core: Core) -> None:
    from datetime import timedelta

    await core.publish("wf", {"triggers": [TRIG]})
    await core.ingest(to_lead(core))
    await core.enroller.unenroll(core.tenant, "wf", "contact", "c1", UnenrollReason.MANUAL)
    now = core.clock[0]
    await core.ledger.prune(
        history_before=now - timedelta(days=1),
        facts_before=now - timedelta(days=1),
        events_before=now - timedelta(days=1),
    )
    assert await core.ledger.history(tenant_id=core.tenant, workflow_id="wf", record_id="c1")
    later = now + timedelta(days=200)
    gone = await core.ledger.prune(
        history_before=later - timedelta(days=183),
        facts_before=later - timedelta(days=730),
        events_before=later - timedelta(days=30),
    )
    # (the database may be shared with other tests: count only what is ours)
    assert gone["history"] >= 1 and gone["processed_events"] >= 1
    assert not await core.ledger.history(tenant_id=core.tenant, workflow_id="wf", record_id="c1")
    fact = await core.ledger.fact(
        tenant_id=core.tenant, workflow_id="wf", object_type="contact", record_id="c1"
    )
    assert fact is not None and fact.enrollment_count == 1  # still "has been enrolled"
