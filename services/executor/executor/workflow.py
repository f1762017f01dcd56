"""EnrolledRecord: one durable run per enrolled record, interpreting the pinned revision.

Control flow (delays, branches, go-to, end) is interpreted here; every side-effecting action is
an activity found by type in ``executor.dispatch`` (this module never names one). Everything
that depends on time uses ``workflow.now()``; random splits hash the enrollment's id, so replay
and retries take the same path. Interpreter changes must go through ``workflow.patched`` — the
recorded histories in tests/histories are replayed in CI to catch the ones that don't.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    # "import a.b as c" (not "from a import b"): the sandbox passes a submodule through only
    # when it is imported by its full name.
    import crmflow.temporal.search_attributes as sa
    import executor.dispatch as dispatch
    import executor.schedule as schedule
    from crmflow.actions.catalogue import default_registry
    from crmflow.actions.control import (
        CONTROL_TYPES,
        DELAY,
        IF_THEN,
        RANDOM_SPLIT,
        VALUE_EQUALS,
        DelayFields,
        DelayKind,
        ValueEqualsFields,
    )
    from crmflow.actions.registry import UnknownActionType
    from crmflow.criteria import evaluate
    from crmflow.criteria.values import equal
    from crmflow.model.actions import Action, Connection
    from crmflow.model.enrollment import (
        WORKFLOW_QUERY_CURRENT_STEP,
        WORKFLOW_SIGNAL_EVENT,
        WORKFLOW_SIGNAL_UNENROLL,
        EnrollmentInput,
        EnrollmentResult,
        RecordEventSignal,
        UnenrollSignal,
    )
    from crmflow.model.records import ChangeEvent
    from crmflow.temporal.ids import ENROLLMENT_WORKFLOW_TYPE, action_idempotency_key
    from executor.events import event_matches
    from executor.payloads import (
        ActionOutcome,
        ActionRequest,
        ActionResult,
        AssociationRef,
        FetchRecordRequest,
        FetchRecordResult,
        ResolveValueRequest,
        ResolveValueResult,
        RunProgress,
        RunState,
    )

CARRY_MEMO = "crmflow_carry"
STEPS_MEMO = "crmflow_steps_per_run"
MAX_BUFFERED_EVENTS = 50
_LOCAL = timedelta(seconds=10)
SHORT_WAIT = timedelta(minutes=1)
# workflow.patched ids: each marks an interpreter change made while enrollments were running.
PATCH_SKIP_FLUSH_SHORT_WAITS = "skip-history-flush-before-short-waits"
# Actions dispatch marks ``local`` (short, CRM-deduplicated steps) run as local activities.
# Histories recorded before this change scheduled them as activities and replay that way.
PATCH_LOCAL_ACTIONS = "local-crm-actions"
# The run's last action writes the closing run-history update itself (with its dedupe record);
# histories recorded before this change end with a record_progress local activity.
PATCH_FINAL_WRITE_BY_ACTION = "final-history-write-by-action"
# One marker per run that stands for all of the changes above: every patch call records a
# marker AND an upsert of the TemporalChangeVersion search attribute (a visibility write on the
# server), three per run on a typical workflow. Runs started with this marker take every
# patched path without asking again; histories without it ask per change, as they were
# recorded. A later change gets its own id (asked even on these runs), and may in turn be
# folded into a new baseline marker the same way.
PATCH_BASELINE = "interpreter-baseline-2"
# If/then branches may read "has been / is currently enrolled in workflow X": the record fetch
# then asks for those facts. No recorded history has such a branch (the filter is newer), the
# marker guards the fetch's changed input all the same.
PATCH_BRANCH_ENROLLMENT_FACTS = "branch-enrollment-facts"


class _Stop(Exception):
    """Ends the run: unenrolled, or a delay whose date passed with 'end'."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


@workflow.defn(name=ENROLLMENT_WORKFLOW_TYPE)
class EnrolledRecord:
    @workflow.init
    def __init__(self, input: EnrollmentInput) -> None:
        self._input = input
        carried = workflow.memo_value(CARRY_MEMO, None, type_hint=RunState)
        self._state: RunState = carried or RunState(next_action_id=input.definition.start_action_id)
        self._events: list[ChangeEvent] = list(self._state.pending_events)
        self._unenroll: UnenrollSignal | None = None
        self._current = ""
        self._steps_this_run = 0
        self._pending: list[ActionOutcome] = []
        self._final_recorded = False  # the last action wrote the closing run-history update
        self._baseline = False  # set by run(): this run carries PATCH_BASELINE
        # Operators (and tests) may lower the continue-as-new threshold per execution (memo).
        self._steps_per_run = int(
            workflow.memo_value(STEPS_MEMO, dispatch.STEPS_PER_RUN, type_hint=int)
        )

    # -- messages ---------------------------------------------------------------------------
    @workflow.signal(name=WORKFLOW_SIGNAL_UNENROLL)
    def unenroll(self, signal: UnenrollSignal) -> None:
        if self._unenroll is None:  # the first reason wins
            self._unenroll = signal

    @workflow.signal(name=WORKFLOW_SIGNAL_EVENT)
    def record_event(self, signal: RecordEventSignal) -> None:
        self._events.append(signal.event)
        del self._events[:-MAX_BUFFERED_EVENTS]

    @workflow.query(name=WORKFLOW_QUERY_CURRENT_STEP)
    def current_step(self) -> str:
        return self._current

    # -- run ----------------------------------------------------------------------------------
    @workflow.run
    async def run(self, input: EnrollmentInput) -> EnrollmentResult:
        self._baseline = workflow.patched(PATCH_BASELINE)
        first_run = workflow.memo_value(CARRY_MEMO, None) is None
        if first_run:
            self._set_status("running")
        action_id = self._state.next_action_id
        try:
            while action_id:
                if self._unenroll is not None:
                    raise _Stop("unenrolled", self._unenroll_reason())
                action_id = await self._step(action_id)
                if action_id and self._should_continue_as_new():
                    await self._flush(action_id)
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    self._state.next_action_id = action_id
                    self._state.pending_events = list(self._events)
                    workflow.continue_as_new(
                        input, memo={CARRY_MEMO: self._state, STEPS_MEMO: self._steps_per_run}
                    )
        except _Stop as stop:
            return await self._finish(stop.status, stop.reason)
        except ApplicationError as err:  # interpreter-level: bad graph, unknown type, loop
            await self._finish("failed", err.message)
            raise
        return await self._finish("completed", "")

    def _should_continue_as_new(self) -> bool:
        return (
            self._steps_this_run >= self._steps_per_run
            or workflow.info().is_continue_as_new_suggested()
        )

    async def _step(self, action_id: str) -> str:
        defn = self._input.definition
        action = defn.actions.get(action_id)
        if action is None:
            raise ApplicationError(
                f"action {action_id!r} is not in the definition", non_retryable=True
            )
        self._state.steps += 1
        self._steps_this_run += 1
        if self._state.steps > dispatch.MAX_STEPS:
            raise ApplicationError(
                f"stopped after {dispatch.MAX_STEPS} steps (a loop without end?)",
                non_retryable=True,
            )
        visit = self._state.visits.get(action_id, 0) + 1
        self._state.visits[action_id] = visit
        self._current = action_id
        try:
            spec = default_registry().get(action.action_type, action.type_version)
        except UnknownActionType as exc:  # fail loudly: the revision names a type we lack
            raise ApplicationError(str(exc), type="UnknownActionType", non_retryable=True) from None
        label = action.label or spec.label
        workflow.set_current_details(f"Step {self._state.steps}: {label} ({action_id})")
        if action.action_type in CONTROL_TYPES:
            nxt = await self._control(action, visit)
        else:
            nxt = await self._side_effect(action, visit)
        return nxt.next_action_id if nxt else ""

    # -- control flow -------------------------------------------------------------------------
    async def _control(self, action: Action, visit: int) -> Connection | None:
        t = action.action_type
        if t == DELAY:
            return await self._delay(action)
        if t == IF_THEN:
            return await self._if_then(action)
        if t == VALUE_EQUALS:
            return await self._value_equals(action, visit)
        if t == RANDOM_SPLIT:
            bucket = schedule.split_bucket(
                workflow.info().workflow_id, action.action_id, str(visit)
            )
            acc = 0
            for b in action.branches:
                acc += b.percentage
                if bucket < acc:
                    return b.connection
            return action.default_connection
        raise ApplicationError(f"control type {t!r} not interpreted", non_retryable=True)

    async def _if_then(self, action: Action) -> Connection | None:
        refs: dict[str, AssociationRef] = {}
        for b in action.branches:
            for f in _filters(b.criteria):
                if f.association is not None:
                    key = f"{f.association.object_type}:{f.association.label}"
                    refs[key] = AssociationRef(
                        object_type=f.association.object_type, label=f.association.label
                    )
        facts = sorted(
            {w for b in action.branches if b.criteria for w in b.criteria.enrollment_workflows()}
        )
        if facts and not workflow.patched(PATCH_BRANCH_ENROLLMENT_FACTS):
            facts = []
        rec = await self._fetch(list(refs.values()), facts)
        now = workflow.now()
        for b in action.branches:
            if (
                b.criteria is not None
                and evaluate(b.criteria, rec.properties, now=now, associated=rec.associated).matched
            ):
                return b.connection
        return action.default_connection

    async def _value_equals(self, action: Action, visit: int) -> Connection | None:
        f = ValueEqualsFields.model_validate(action.fields)
        value: Any
        if f.property:
            value = (await self._fetch([])).properties.get(f.property)
        else:
            res = await workflow.execute_local_activity(
                dispatch.RESOLVE_VALUE,
                ResolveValueRequest(request=self._request(action, visit), expression=f.expression),
                result_type=ResolveValueResult,
                start_to_close_timeout=_LOCAL,
                retry_policy=dispatch.INTERNAL_RETRY,
            )
            value = res.value
        for b in action.branches:
            if any(equal(value, v) for v in b.values):
                return b.connection
        return action.default_connection

    async def _delay(self, action: Action) -> Connection | None:
        f = DelayFields.model_validate(action.fields)
        summary = _summary(action)
        tz = self._input.definition.settings.time_zone
        now = workflow.now()
        if f.kind == DelayKind.DURATION:
            await self._sleep_until(now + timedelta(seconds=f.seconds), summary)
        elif f.kind == DelayKind.UNTIL_WEEKDAY_TIME:
            target = schedule.next_weekday_time(now, tz, f.days_of_week, f.time_of_day)
            await self._sleep_until(target, summary)
        elif f.kind in (DelayKind.UNTIL_DATE, DelayKind.UNTIL_DATE_PROPERTY):
            when: datetime | None
            if f.kind == DelayKind.UNTIL_DATE:
                when = f.date
            else:
                value = (await self._fetch([])).properties.get(f.date_property)
                when = schedule.date_property_target(value, tz, f.offset_days, f.time_of_day)
            if when is None or when <= now:
                if f.if_passed == "end":
                    raise _Stop("completed", f"delay {action.action_id}: the date has passed")
                return action.connection
            await self._sleep_until(when, summary)
        elif f.kind == DelayKind.UNTIL_EVENT:
            return await self._wait_for_event(action, f, summary)
        return action.connection

    async def _wait_for_event(
        self, action: Action, f: DelayFields, summary: str
    ) -> Connection | None:
        # Only events that happen while waiting count: drop what arrived before.
        await self._flush(self._current)
        self._events.clear()
        assert f.event is not None
        trigger = f.event
        matched = False

        def done() -> bool:
            nonlocal matched
            now = workflow.now()
            matched = matched or any(event_matches(trigger, e, now=now) for e in self._events)
            return matched or self._unenroll is not None

        try:
            await workflow.wait_condition(
                done, timeout=timedelta(seconds=f.seconds), timeout_summary=summary
            )
        except TimeoutError:
            pass
        self._events.clear()
        if self._unenroll is not None:
            raise _Stop("unenrolled", self._unenroll_reason())
        if matched:
            return action.connection
        # Timed out: the branch is the timeout path (none = carry on as if the event happened).
        timeout_path = next((b.connection for b in action.branches if b.connection), None)
        return timeout_path or action.connection

    async def _sleep_until(self, target: datetime, summary: str) -> None:
        if target <= workflow.now():
            return
        # The run history is current while we wait — unless the wait is short: then the next
        # write comes soon anyway (one write fewer per step on busy workflows).
        short = target - workflow.now() < SHORT_WAIT
        if not (short and self._patched(PATCH_SKIP_FLUSH_SHORT_WAITS)):
            await self._flush(self._current)
        remaining = target - workflow.now()
        if remaining <= timedelta(0):
            return
        try:
            await workflow.wait_condition(
                lambda: self._unenroll is not None, timeout=remaining, timeout_summary=summary
            )
        except TimeoutError:
            return
        raise _Stop("unenrolled", self._unenroll_reason())

    # -- side effects ------------------------------------------------------------------------
    async def _side_effect(self, action: Action, visit: int) -> Connection | None:
        try:
            opts = dispatch.activity_for(action.action_type)
        except dispatch.UnknownActionActivity as exc:
            raise ApplicationError(str(exc), type="UnknownActionType", non_retryable=True) from None
        await self._wait_for_window(action, visit)
        if self._unenroll is not None:
            raise _Stop("unenrolled", self._unenroll_reason())
        summary = _summary(action)
        started = workflow.now()
        req = self._request(action, visit)
        # No next action: the run completes right after this one (nothing can change that
        # now), so the action itself can write the closing run-history update.
        last = action.connection is None or not action.connection.next_action_id
        if last and self._patched(PATCH_FINAL_WRITE_BY_ACTION):
            req.final_progress = self._progress("", "completed", "", list(self._pending))
        queue = (
            await self._custom_code_queue() if opts.queue == dispatch.CUSTOM_CODE_QUEUE else None
        )
        try:
            result: ActionResult
            if opts.local and self._patched(PATCH_LOCAL_ACTIONS):
                result = await workflow.execute_local_activity(
                    opts.activity_name,
                    req,
                    result_type=ActionResult,
                    start_to_close_timeout=opts.start_to_close,
                    schedule_to_close_timeout=opts.schedule_to_close,
                    retry_policy=opts.retry,
                    summary=summary,
                )
            else:
                result = await workflow.execute_activity(
                    opts.activity_name,
                    req,
                    result_type=ActionResult,
                    task_queue=queue,
                    start_to_close_timeout=opts.start_to_close,
                    schedule_to_close_timeout=opts.schedule_to_close,
                    retry_policy=opts.retry,
                    summary=summary,
                )
        except (ActivityError, ApplicationError) as err:  # local activities raise the cause
            cause = err.cause if isinstance(err, ActivityError) else err
            reason = getattr(cause, "message", None) or str(cause or err)
            self._state.failures += 1
            self._pending.append(
                ActionOutcome(
                    action_id=action.action_id,
                    action_type=action.action_type,
                    visit=visit,
                    status="failed",
                    reason=reason,
                    attempts=0,
                    started_at=started,
                    finished_at=workflow.now(),
                    idempotency_key=req.idempotency_key,
                )
            )
            # A failed action is logged and the record moves on (HubSpot's behaviour).
            return action.connection
        if result.outputs:
            self._state.outputs[action.action_id] = result.outputs
        if result.recorded:
            self._pending = []
            self._final_recorded = True
            return action.connection
        self._pending.append(
            ActionOutcome(
                action_id=action.action_id,
                action_type=action.action_type,
                visit=visit,
                status=result.status,
                reason=result.reason,
                attempts=result.attempt,
                started_at=result.started_at or started,
                finished_at=workflow.now(),
                outputs=result.outputs,
                idempotency_key=req.idempotency_key,
            )
        )
        return action.connection

    async def _wait_for_window(self, action: Action, visit: int) -> None:
        settings = self._input.definition.settings
        opening = schedule.next_allowed_time(workflow.now(), settings)
        if opening is None:
            return
        target = opening + schedule.spread_offset(
            workflow.info().workflow_id, action.action_id, str(visit)
        )
        workflow.set_current_details(
            f"Waiting for the execution window to run {action.action_id}"
            f" at {target:%Y-%m-%d %H:%M} UTC"
        )
        await self._sleep_until(target, "Wait for execution window")

    # -- helpers ------------------------------------------------------------------------------
    def _request(self, action: Action, visit: int) -> ActionRequest:
        i = self._input
        wf_id = workflow.info().workflow_id
        event = i.triggering_event
        return ActionRequest(
            tenant_id=i.tenant_id,
            workflow_id=i.workflow_id,
            revision=i.revision,
            object_type=i.object_type,
            record_id=i.record_id,
            run_workflow_id=wf_id,
            enrollment_number=i.enrollment_number,
            action_id=action.action_id,
            action_type=action.action_type,
            type_version=action.type_version,
            fields=action.fields,
            visit=visit,
            idempotency_key=action_idempotency_key(wf_id, action.action_id, visit),
            action_outputs=self._state.outputs,
            event_properties=dict(event.properties) if event else {},
            time_zone=i.definition.settings.time_zone,
            data_sources=i.definition.data_sources,
            triggers=i.definition.enrollment.triggers,
        )

    async def _fetch(
        self, refs: list[AssociationRef], enrollment_workflows: list[str] | None = None
    ) -> FetchRecordResult:
        i = self._input
        req = FetchRecordRequest(
            tenant_id=i.tenant_id,
            object_type=i.object_type,
            record_id=i.record_id,
            associations=refs,
        )
        if enrollment_workflows:
            req.enrollment_workflows = enrollment_workflows
        rec: FetchRecordResult = await workflow.execute_local_activity(
            dispatch.FETCH_RECORD,
            req,
            result_type=FetchRecordResult,
            start_to_close_timeout=_LOCAL,
            retry_policy=dispatch.INTERNAL_RETRY,
        )
        if not rec.found:
            raise _Stop("unenrolled", "record_deleted: the enrolled record no longer exists")
        return rec

    async def _flush(self, step: str, status: str = "running", reason: str = "") -> None:
        """Write the run's status and the outcomes since the last write (one local activity)."""
        outcomes, self._pending = self._pending, []
        await workflow.execute_local_activity(
            dispatch.RECORD_PROGRESS,
            self._progress(step, status, reason, outcomes),
            start_to_close_timeout=_LOCAL,
            retry_policy=dispatch.INTERNAL_RETRY,
        )

    def _progress(
        self, step: str, status: str, reason: str, outcomes: list[ActionOutcome]
    ) -> RunProgress:
        i = self._input
        return RunProgress(
            tenant_id=i.tenant_id,
            run_workflow_id=workflow.info().workflow_id,
            workflow_id=i.workflow_id,
            revision=i.revision,
            object_type=i.object_type,
            record_id=i.record_id,
            enrollment_number=i.enrollment_number,
            enrolled_at=i.enrolled_at,
            status=status,  # type: ignore[arg-type]
            current_step=step,
            reason=reason,
            at=workflow.now(),
            outcomes=outcomes,
        )

    async def _custom_code_queue(self) -> str:
        # The worker's configuration, asked once and kept in state: part of history, so the
        # value replays identically even if the configuration changes later.
        if not self._state.custom_code_task_queue:
            cfg: dict[str, Any] = await workflow.execute_local_activity(
                dispatch.WORKER_CONFIG,
                None,
                result_type=dict,
                start_to_close_timeout=_LOCAL,
                retry_policy=dispatch.INTERNAL_RETRY,
            )
            self._state.custom_code_task_queue = str(cfg["custom_code_task_queue"])
        return self._state.custom_code_task_queue

    async def _finish(self, status: str, reason: str) -> EnrollmentResult:
        self._current = ""
        self._set_status(status)
        workflow.set_current_details(f"{status.capitalize()}{': ' + reason if reason else ''}")
        if not (status == "completed" and self._final_recorded and not self._pending):
            await self._flush("", status, reason)
        return EnrollmentResult(status=status, reason=reason, steps=self._state.steps)

    def _patched(self, patch_id: str) -> bool:
        """``workflow.patched`` for the changes folded into PATCH_BASELINE."""
        return self._baseline or workflow.patched(patch_id)

    def _set_status(self, status: str) -> None:
        # Only where enrollment started us with crmflow's search attributes: a namespace
        # without them registered would reject the upsert (and fail every workflow task).
        if workflow.info().typed_search_attributes.get(sa.TENANT_ID) is not None:
            workflow.upsert_search_attributes([sa.STATUS.value_set(status)])

    def _unenroll_reason(self) -> str:
        u = self._unenroll
        assert u is not None
        return f"{u.reason.value}{': ' + u.detail if u.detail else ''}"


def _summary(action: Action) -> str:
    spec = default_registry().get(action.action_type, action.type_version)
    try:
        text = spec.summary(spec.fields_model.model_validate(action.fields))
    except Exception:  # fields with unresolved tokens may not validate yet
        text = ""
    return (text or action.label or spec.label)[:200]


def _filters(group: Any) -> list[Any]:
    if group is None:
        return []
    out = list(group.filters)
    for g in group.groups:
        out += _filters(g)
    return out
