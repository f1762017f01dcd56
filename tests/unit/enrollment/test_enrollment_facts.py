""" "Has (not) been / is (not) currently enrolled in workflow X" criteria: read from the ledger's
facts as virtual properties, evaluated by the same index and evaluator, and enrolling in one
workflow triggers the workflows that wait for it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from crmflow.criteria import evaluate
from crmflow.model.criteria import (
    CURRENT,
    PAST,
    Conjunction,
    EnrollmentCondition,
    FilterGroup,
    PropertyFilter,
    WorkflowEnrollmentFilter,
    enrollment_property,
)
from tests.unit.enrollment.conftest import T0, Core
from tests.unit.enrollment.test_rules import TRIG, away, to_lead

# the recovery loop's age for outbox rows; replays are of this test's tenant (the PostgreSQL
# ledger is shared by the tests)
AGE = timedelta(seconds=30)


def enrolled_in(wf: str, condition: str = "HAS_BEEN_ENROLLED") -> dict[str, Any]:
    return {"workflow_id": wf, "condition": f"ENROLLMENT_CONDITION_{condition}"}


def criteria(*enrollment_filters: dict[str, Any], **group: Any) -> dict[str, Any]:
    return {"criteria": {"filter": {"enrollment_filters": list(enrollment_filters), **group}}}


# -- the model and the evaluator ----------------------------------------------------------
def test_conditions_are_filters_on_the_virtual_property() -> None:
    g = FilterGroup(
        enrollment_filters=[
            WorkflowEnrollmentFilter(workflow_id="a", condition=EnrollmentCondition(c))
            for c in EnrollmentCondition
        ]
    )
    prop = enrollment_property("a")
    assert g.properties() == {prop}
    seen = {}
    for state in (None, PAST, CURRENT):
        rec = {} if state is None else {prop: state}
        r = evaluate(FilterGroup(conjunction=Conjunction.OR, groups=[g]), rec, now=T0)
        seen[state] = [t.matched for t in r.trace]
    # has been, has not been, is currently, is not currently
    assert seen == {
        None: [False, True, False, True],
        PAST: [True, False, False, True],
        CURRENT: [True, False, True, False],
    }
    paths = [t.path for t in evaluate(g, {}, now=T0).trace]
    assert paths[0] == "filter.enrollment_filters[0]" and paths[3].endswith("[3]")


def test_crm_search_widens_without_losing_a_match() -> None:
    lead = PropertyFilter(property="stage", operator="eq", value="lead")
    ef = WorkflowEnrollmentFilter(workflow_id="a", condition=EnrollmentCondition.HAS_BEEN_ENROLLED)
    and_ = FilterGroup(filters=[lead], enrollment_filters=[ef])
    assert and_.without_enrollment_filters() == FilterGroup(filters=[lead])
    # an OR with an enrollment filter can match any record: the CRM must return them all
    or_ = FilterGroup(conjunction=Conjunction.OR, filters=[lead], enrollment_filters=[ef])
    assert or_.without_enrollment_filters().is_empty()
    nested = FilterGroup(filters=[lead], groups=[or_])
    assert nested.without_enrollment_filters() == FilterGroup(filters=[lead])
    assert FilterGroup(filters=[lead]).enrollment_workflows() == set()
    assert nested.enrollment_workflows() == {"a"}


# -- enrollment ---------------------------------------------------------------------------
async def test_enrolling_in_a_triggers_the_workflow_waiting_for_it(core: Core) -> None:
    await core.publish("a", {"triggers": [TRIG]})
    await core.publish("b", {"triggers": [criteria(enrolled_in("a"))]})
    ev = to_lead(core)
    assert await core.ingest(ev) == [("a", "enrolled"), ("b", "enrolled")]
    runs = core.starter.started()
    assert runs == [f"enroll/{core.tenant}/a/contact-c1/1", f"enroll/{core.tenant}/b/contact-c1/1"]
    # the same event again: the same answer, nothing new (the cascade does not repeat)
    dup, _ = await core.ingestor.ingest(ev)
    assert dup and core.starter.started() == runs and len(core.starter.starts) == 2
    facts = await core.ledger.fact_properties(
        tenant_id=core.tenant, object_type="contact", record_ids=["c1", "c2"]
    )
    assert facts == {"c1": {"@enrollment:a": CURRENT, "@enrollment:b": CURRENT}, "c2": {}}


async def test_has_not_been_enrolled_combines_with_property_filters(core: Core) -> None:
    score = {"property": "score", "operator": "gt", "value": 5}
    await core.publish("a", {"triggers": [{"criteria": {"filter": {"filters": [score]}}}]})
    lead = {"property": "lifecyclestage", "operator": "eq", "value": "lead"}
    await core.publish(
        "b", {"triggers": [criteria(enrolled_in("a", "HAS_NOT_BEEN_ENROLLED"), filters=[lead])]}
    )
    ev = core.event("c1", {"score": (1, 9)}, snapshot={"score": 9})
    assert await core.ingest(ev) == [("a", "enrolled")]
    core.starter.finish_all()  # still "has been enrolled" after the run ended
    assert await core.ingest(to_lead(core, "c1", score=9)) == []
    assert await core.ingest(to_lead(core, "c2")) == [("b", "enrolled")]


async def test_currently_enrolled_and_its_end(core: Core) -> None:
    await core.publish("a", {"triggers": [TRIG], "unenroll_when_criteria_not_met": True})
    await core.publish("b", {"triggers": [criteria(enrolled_in("a", "IS_NOT_CURRENTLY_ENROLLED"))]})
    await core.publish("c", {"triggers": [criteria(enrolled_in("a", "IS_CURRENTLY_ENROLLED"))]})
    assert await core.ingest(to_lead(core)) == [("a", "enrolled"), ("c", "enrolled")]
    # leaving a (criteria no longer met) flips "is not currently enrolled in a": b enrolls
    out = await core.ingest(away(core))
    assert out == [("a", "unenrolled"), ("b", "enrolled")]


async def test_goal_reads_facts(core: Core) -> None:
    await core.publish("a", {"triggers": [TRIG]})
    score = {"property": "score", "operator": "gt", "value": 5}
    await core.publish(
        "b",
        {
            "triggers": [{"criteria": {"filter": {"filters": [score]}}}],
            "goal": {"enrollment_filters": [enrolled_in("a")]},
        },
    )
    ev = core.event("c1", {"score": (1, 9)}, snapshot={"score": 9})
    assert await core.ingest(ev) == [("b", "enrolled")]
    # entering a meets b's goal: b's enrollment ends
    assert await core.ingest(to_lead(core, score=9)) == [("a", "enrolled"), ("b", "unenrolled")]
    # and a record already in a does not enter b (goal met)
    await core.ingest(to_lead(core, "c2"))
    ev = core.event("c2", {"score": (1, 9)}, snapshot={"score": 9, "lifecyclestage": "lead"})
    assert await core.ingest(ev) == [("b", "goal_met")]


async def test_manual_enrollment_cascades(core: Core) -> None:
    await core.publish("a", {"triggers": []})
    await core.publish("b", {"triggers": [criteria(enrolled_in("a"))]})
    await core.records.create(core.tenant, "contact", {"firstname": "x"}, record_id="m1")
    out = await core.enroller.enroll(
        core.workflows.get(core.tenant, "a"), "m1", trigger="manual", record={}, follow=[]
    )
    assert out.outcome == "enrolled"
    assert f"enroll/{core.tenant}/b/contact-m1/1" in core.starter.runs


async def test_cascade_between_two_workflows_stops(core: Core) -> None:
    # a enrolls on "enrolled in b", b on "enrolled in a": one enrollment each, no loop
    await core.publish("a", {"triggers": [TRIG, criteria(enrolled_in("b"))]})
    await core.publish("b", {"triggers": [criteria(enrolled_in("a"))]})
    # b's enrollment flips a's second trigger: a answers "already enrolled", and it stops
    assert await core.ingest(to_lead(core)) == [
        ("a", "enrolled"),
        ("b", "enrolled"),
        ("a", "already_enrolled"),
    ]
    assert len(core.starter.runs) == 2


async def test_clients_cannot_send_virtual_properties(core: Core) -> None:
    import pytest

    from crmflow.errors import InvalidArgument

    ev = core.event("c1", {"@enrollment:a": (None, "current")})
    with pytest.raises(InvalidArgument) as err:
        await core.ingestor.check_types(ev, "events[0]")
    assert err.value.violations[0].field == "events[0].changes[0].property"


async def test_only_workflows_reading_facts_pay_for_them(core: Core) -> None:
    await core.publish("a", {"triggers": [TRIG]})
    assert not core.index.reads_facts(core.tenant, "contact")
    await core.publish("b", {"triggers": [criteria(enrolled_in("a"))]})
    assert core.index.reads_facts(core.tenant, "contact", "a")
    assert not core.index.reads_facts(core.tenant, "contact", "b")
    await core.publish("b", {"triggers": [TRIG]}, revision=2)
    assert not core.index.reads_facts(core.tenant, "contact")


async def test_a_crash_before_the_cascade_is_made_up_on_redelivery(core: Core) -> None:
    import pytest

    await core.publish("a", {"triggers": [TRIG]})
    await core.publish("b", {"triggers": [criteria(enrolled_in("a"))]})
    hook = core.enroller.on_fact_change

    async def crash(_: object) -> list[object]:
        raise RuntimeError("process died")

    core.enroller.on_fact_change = crash  # type: ignore[assignment]
    ev = to_lead(core)
    with pytest.raises(RuntimeError):
        await core.ingestor.ingest(ev)
    assert core.starter.started() == [f"enroll/{core.tenant}/a/contact-c1/1"]
    core.enroller.on_fact_change = hook
    # the event is redelivered: a answers as before, b gets its enrollment now
    assert await core.ingest(ev) == [("a", "already_enrolled"), ("b", "enrolled")]
    # and once more: a duplicate, nothing new
    dup, _ = await core.ingestor.ingest(ev)
    assert dup and len(core.starter.runs) == 2


# -- the end of an enrollment: its cascade survives a crash (the fact-change outbox) ---------
async def _outbox(core: Core) -> list[str]:
    rows = await core.ledger.pending_fact_changes(
        core.clock[0] + timedelta(days=1), tenant_id=core.tenant
    )
    return [c.change_id for c in rows]


def _runs_of(core: Core, wf: str) -> list[str]:
    return [r for r in core.starter.runs if f"/{wf}/" in r]


async def _replay(core: Core) -> int:
    """The recovery loop's replay of this tenant's outbox rows older than AGE."""
    from enrollment.runtime import replay_fact_changes

    return await replay_fact_changes(core.enroller, age=AGE, tenant_id=core.tenant)


async def test_a_crash_between_an_unenrollment_and_its_cascade_is_replayed(core: Core) -> None:

    import pytest

    await core.publish("a", {"triggers": [TRIG], "unenroll_when_criteria_not_met": True})
    await core.publish("b", {"triggers": [criteria(enrolled_in("a", "IS_NOT_CURRENTLY_ENROLLED"))]})
    assert await core.ingest(to_lead(core)) == [("a", "enrolled")]
    hook = core.enroller.on_fact_change

    async def crash(_: object) -> list[object]:
        raise RuntimeError("process died")

    core.enroller.on_fact_change = crash  # type: ignore[assignment]
    ev = away(core)
    with pytest.raises(RuntimeError):
        await core.ingestor.ingest(ev)
    core.enroller.on_fact_change = hook
    # the unenrollment is recorded, the cascade is not: b has no enrollment
    assert (
        await core.ledger.active_for_record(
            tenant_id=core.tenant, object_type="contact", record_id="c1"
        )
        == []
    )
    assert _runs_of(core, "b") == []
    run_a = f"enroll/{core.tenant}/a/contact-c1/1"
    assert await _outbox(core) == [f"enrollment:{run_a}:past"]
    # a redelivery of the event does not bring it back (a is no longer enrolled)...
    assert await core.ingest(ev) == []
    assert _runs_of(core, "b") == []
    # ...the recovery loop does, once the change is older than its age
    assert await _replay(core) == 0
    core.tick(minutes=1)
    assert await _replay(core) == 1
    assert _runs_of(core, "b") == [f"enroll/{core.tenant}/b/contact-c1/1"]
    assert await _outbox(core) == []
    # nothing left to replay, and the cascade's event is a duplicate anyway
    assert await _replay(core) == 0
    from enrollment.fact_change import FactChange

    from crmflow.model.criteria import CURRENT, PAST

    again = FactChange(core.tenant, "contact", "c1", "a", CURRENT, PAST, run_a, durable=True)
    await core.enroller.emit(again, None)
    assert _runs_of(core, "b") == [f"enroll/{core.tenant}/b/contact-c1/1"]
    assert len([s for s in core.starter.starts if "/b/" in s]) == 1


async def test_a_replay_after_a_partial_cascade_enrolls_once(core: Core) -> None:
    """The crash comes after the cascade enrolled b but before its event was recorded as
    processed (and before the outbox row was dropped): the replay finds b's enrollment by the
    change's event id."""

    import pytest

    await core.publish("a", {"triggers": [TRIG], "unenroll_when_criteria_not_met": True})
    await core.publish("b", {"triggers": [criteria(enrolled_in("a", "IS_NOT_CURRENTLY_ENROLLED"))]})
    assert await core.ingest(to_lead(core)) == [("a", "enrolled")]
    mark = core.ledger.mark_processed

    async def die_on_cascade(tenant_id: str, event_id: str, *a: object, **kw: object) -> None:
        if event_id.startswith("enrollment:"):
            raise RuntimeError("process died")
        await mark(tenant_id, event_id, *a, **kw)  # type: ignore[arg-type]

    core.ledger.mark_processed = die_on_cascade  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await core.ingestor.ingest(away(core))
    core.ledger.mark_processed = mark  # type: ignore[method-assign]
    assert _runs_of(core, "b") == [f"enroll/{core.tenant}/b/contact-c1/1"]
    assert len(await _outbox(core)) == 1
    core.tick(minutes=1)
    assert await _replay(core) == 1
    history = await core.ledger.history(tenant_id=core.tenant, workflow_id="b", record_id="c1")
    assert [(h.enrollment_number, h.status) for h in history] == [(1, "running")]
    assert _runs_of(core, "b") == [f"enroll/{core.tenant}/b/contact-c1/1"]
    assert await _outbox(core) == []


async def test_no_outbox_row_when_no_workflow_reads_the_fact(core: Core) -> None:
    await core.publish("a", {"triggers": [TRIG], "unenroll_when_criteria_not_met": True})
    await core.publish("b", {"triggers": [TRIG]})
    assert sorted(await core.ingest(to_lead(core))) == [("a", "enrolled"), ("b", "enrolled")]
    assert await core.ingest(away(core)) == [("a", "unenrolled")]
    assert await _outbox(core) == []


async def test_a_run_ended_by_itself_and_noticed_by_a_rule_cascades(core: Core) -> None:
    """The rules reconcile an ended run lazily (the record re-enters a): that end is a
    current -> past change too, emitted before the new enrollment's own change, so "is not
    currently enrolled in a" fires (before, only the visibility sweep emitted it, and it skips
    rows a rule had already ended)."""
    await core.publish("a", {"triggers": [TRIG], "reenrollment": {"enabled": True}})
    await core.publish("b", {"triggers": [criteria(enrolled_in("a", "IS_NOT_CURRENTLY_ENROLLED"))]})
    assert await core.ingest(to_lead(core)) == [("a", "enrolled")]
    core.starter.finish_all()  # a's run ends by itself; the ledger still says running
    await core.ingest(away(core))
    out = await core.ingest(to_lead(core))
    assert out == [("a", "enrolled"), ("b", "enrolled")]
    assert await _outbox(core) == []


async def test_the_ended_runs_watermark_on_first_start_and_after(core: Core) -> None:
    """No watermark yet: with no active enrollment, now minus the overlap; with some, the
    oldest one's start (no run the ledger thinks active closed before it), but at most 30 days
    back; once saved, the watermark only moves forward."""

    from enrollment.ended_runs import FIRST_LOOKBACK, OVERLAP, WATERMARK, EndedRuns

    def sweep() -> EndedRuns:
        return EndedRuns(None, core.enroller, core.index)  # type: ignore[arg-type]

    if await core.ledger.sweep_watermark(WATERMARK) is None:  # PostgreSQL: one shared database
        if await core.ledger.oldest_active_enrolled_at() is None:
            assert await sweep().load() == T0 - OVERLAP
    await core.publish("a", {"triggers": [TRIG]})
    assert await core.ingest(to_lead(core)) == [("a", "enrolled")]
    oldest = await core.ledger.oldest_active_enrolled_at()
    assert oldest is not None and oldest <= T0
    core.tick(days=2)
    assert await core.ledger.sweep_watermark(WATERMARK) is not None or (
        await sweep().load() == oldest - OVERLAP
    )
    core.tick(days=60)
    if await core.ledger.sweep_watermark(WATERMARK) is None:
        assert await sweep().load() == core.clock[0] - FIRST_LOOKBACK
    # nobody reads facts: the sweep asks nothing, moves the watermark and saves it
    s = sweep()
    assert await s.sweep() == 0
    saved = await core.ledger.sweep_watermark(WATERMARK)
    assert saved is not None and saved >= core.clock[0] - OVERLAP
    # a sweep whose clock is behind does not move it back
    core.tick(days=-1)
    assert await sweep().sweep() == 0
    assert await core.ledger.sweep_watermark(WATERMARK) == saved


# -- the start of an enrollment: its cascade survives a crash too (same outbox) -------------
async def _crash_cascades(core: Core, *workflows: str) -> Any:
    """Make the cascade of changes of ``workflows`` die as the process would; returns the hook
    to put back."""
    hook = core.enroller.on_fact_change

    async def crash(change: Any) -> list[Any]:
        if change.workflow_id in workflows:
            raise RuntimeError("process died")
        assert hook is not None
        return await hook(change)

    core.enroller.on_fact_change = crash
    return hook


async def _manual(core: Core, wf: str, record_id: str) -> Any:
    cw = core.workflows.get(core.tenant, wf)
    assert cw is not None
    return await core.enroller.enroll(cw, record_id, trigger="manual", record={}, follow=[])


async def test_a_crash_between_a_manual_enrollment_and_its_cascade_is_replayed(
    core: Core,
) -> None:
    """Nothing redelivers a manual enrollment (a retry finds the record already enrolled): the
    "enrolled in a" change is written to the outbox with the enrollment, and the recovery loop
    runs the cascade the crash lost - once."""

    import pytest
    from enrollment.fact_change import FactChange
    from enrollment.servicer import EnrollmentServicer

    from crmflow.api.enrollment.v1 import enrollment_service_pb2 as pb

    await core.publish("a", {"triggers": []})
    await core.publish("b", {"triggers": [criteria(enrolled_in("a"))]})
    await core.records.create(core.tenant, "contact", {"firstname": "x"}, record_id="m1")
    rpc = EnrollmentServicer(
        workflows=core.workflows,
        enroller=core.enroller,
        ingestor=core.ingestor,
        clock=lambda: core.clock[0],
    )
    req = pb.EnrollManuallyRequest(tenant_id=core.tenant, workflow_id="a", record_ids=["m1"])
    hook = await _crash_cascades(core, "a")
    with pytest.raises(RuntimeError):
        await rpc.EnrollManually(req, None)
    core.enroller.on_fact_change = hook
    run_a = f"enroll/{core.tenant}/a/contact-m1/1"
    assert _runs_of(core, "a") == [run_a] and _runs_of(core, "b") == []
    assert await _outbox(core) == [f"enrollment:{run_a}:current"]
    # a retry of the request does not bring the cascade back: a is enrolled already
    res = await rpc.EnrollManually(req, None)
    assert [(o.workflow_id, o.outcome) for o in res.outcomes] == [("a", "already_enrolled")]
    assert _runs_of(core, "b") == []
    # the recovery loop does, once the row is older than its age
    assert await _replay(core) == 0
    core.tick(minutes=1)
    assert await _replay(core) == 1
    assert _runs_of(core, "b") == [f"enroll/{core.tenant}/b/contact-m1/1"]
    assert await _outbox(core) == []
    assert await _replay(core) == 0
    # the same change offered again (a second replica's replay): a duplicate, nothing new
    again = FactChange(core.tenant, "contact", "m1", "a", None, CURRENT, run_a, durable=True)
    await core.enroller.emit(again, None)
    assert len([s for s in core.starter.starts if "/b/" in s]) == 1
    history = await core.ledger.history(tenant_id=core.tenant, workflow_id="b", record_id="m1")
    assert [h.enrollment_number for h in history] == [1]


async def test_a_replay_after_a_completed_enrollment_cascade_enrolls_nothing_more(
    core: Core,
) -> None:

    from enrollment.fact_change import FactChange

    await core.publish("a", {"triggers": []})
    await core.publish("b", {"triggers": [criteria(enrolled_in("a"))]})
    assert (await _manual(core, "a", "m1")).outcome == "enrolled"
    assert _runs_of(core, "b") == [f"enroll/{core.tenant}/b/contact-m1/1"]
    assert await _outbox(core) == []  # written with the enrollment, gone once it cascaded
    core.tick(minutes=1)
    assert await _replay(core) == 0
    # a replay racing the end of the cascade (its row read just before the delete)
    run_a = f"enroll/{core.tenant}/a/contact-m1/1"
    await core.enroller.emit(
        FactChange(core.tenant, "contact", "m1", "a", None, CURRENT, run_a, durable=True), None
    )
    assert len([s for s in core.starter.starts if "/b/" in s]) == 1
    assert await _outbox(core) == []


async def test_an_enrollment_writes_an_outbox_row_only_when_its_fact_is_read(core: Core) -> None:
    """c reads "enrolled in b", nobody reads "enrolled in a": a's enrollment (its cascade
    crashing) leaves no outbox row, b's does."""

    import pytest

    await core.publish("a", {"triggers": []})
    await core.publish("b", {"triggers": []})
    await core.publish("c", {"triggers": [criteria(enrolled_in("b"))]})
    hook = await _crash_cascades(core, "a", "b")
    with pytest.raises(RuntimeError):
        await _manual(core, "a", "m1")
    assert await _outbox(core) == []
    with pytest.raises(RuntimeError):
        await _manual(core, "b", "m1")
    core.enroller.on_fact_change = hook
    assert await _outbox(core) == [f"enrollment:enroll/{core.tenant}/b/contact-m1/1:current"]
    core.tick(minutes=1)
    assert await _replay(core) == 1
    assert _runs_of(core, "c") == [f"enroll/{core.tenant}/c/contact-m1/1"]
    assert await _outbox(core) == []


async def test_a_redelivered_event_clears_its_enrollment_outbox_row(core: Core) -> None:
    """An ingested event whose cascade crashed: the redelivery runs the cascade (as before)
    and drops the outbox row, so the recovery loop has nothing left to do."""
    import pytest

    await core.publish("a", {"triggers": [TRIG]})
    await core.publish("b", {"triggers": [criteria(enrolled_in("a"))]})
    hook = await _crash_cascades(core, "a")
    ev = to_lead(core)
    with pytest.raises(RuntimeError):
        await core.ingestor.ingest(ev)
    core.enroller.on_fact_change = hook
    assert len(await _outbox(core)) == 1
    assert await core.ingest(ev) == [("a", "already_enrolled"), ("b", "enrolled")]
    assert await _outbox(core) == []


async def test_a_reenrollment_replays_the_previous_end_before_its_own_change(
    core: Core,
) -> None:
    """A re-enrollment that reconciles the previous run's end writes two outbox rows: the end
    (current -> past) and the new enrollment (past -> current). The replay runs them in that
    order, even on a clock that moves between the two writes (the enrollment's own time was
    read before the end's)."""

    import pytest

    await core.publish("a", {"triggers": [TRIG], "reenrollment": {"enabled": True}})
    await core.publish("b", {"triggers": [criteria(enrolled_in("a", "IS_NOT_CURRENTLY_ENROLLED"))]})
    assert await core.ingest(to_lead(core)) == [("a", "enrolled")]
    core.starter.finish_all()  # a's run ends by itself; the ledger still says running
    await core.ingest(away(core))
    base = core.enroller.clock

    def moving() -> Any:
        core.tick(milliseconds=1)
        return base()

    core.enroller.clock = moving
    hook = await _crash_cascades(core, "a")
    with pytest.raises(RuntimeError):
        await core.ingestor.ingest(to_lead(core))
    core.enroller.on_fact_change = hook
    run1, run2 = (f"enroll/{core.tenant}/a/contact-c1/{n}" for n in (1, 2))
    assert await _outbox(core) == [f"enrollment:{run1}:past", f"enrollment:{run2}:current"]
    seen: list[tuple[str | None, str | None]] = []

    async def spy(change: Any) -> list[Any]:
        if change.workflow_id == "a":
            seen.append((change.old, change.new))
        assert hook is not None
        return await hook(change)

    core.enroller.on_fact_change = spy
    core.tick(minutes=1)
    assert await _replay(core) == 2
    # (b's own enrollment, made by the first, cascades in between: nobody reads it)
    assert seen == [(CURRENT, PAST), (PAST, CURRENT)]
    assert _runs_of(core, "b") == [f"enroll/{core.tenant}/b/contact-c1/1"]
    assert await _outbox(core) == []
