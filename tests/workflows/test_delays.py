"""Every delay kind, execution windows, unenrollment and events, on the time-skipping server.

Times are checked against the workflow's own clock: the run history stores each outcome's
``finished_at`` from ``workflow.now()``, which the time-skipping server moves forward.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from executor.history import utc
from temporalio.testing import WorkflowEnvironment

from crmflow.model.actions import Action
from crmflow.model.enrollment import (
    WORKFLOW_QUERY_CURRENT_STEP,
    WORKFLOW_SIGNAL_EVENT,
    WORKFLOW_SIGNAL_UNENROLL,
    RecordEventSignal,
    UnenrollReason,
    UnenrollSignal,
)
from crmflow.model.records import ChangeEvent, ChangeEventType
from crmflow.model.settings import ExecutionWindow, WorkflowSettings
from tests.workflows.harness import act, branch, definition, enrollment, running_worker

TZ = "Europe/Copenhagen"


async def _finished(h, tenant_id: str, run_id: str, action_id: str) -> datetime:  # type: ignore[no-untyped-def]
    timeline = await h.history.timeline(tenant_id=tenant_id, run_workflow_id=run_id)
    row = next(t for t in timeline if t.action_id == action_id)
    return utc(row.finished_at)  # type: ignore[return-value]


async def test_duration_delay_then_action(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, tenant_id: str
) -> None:
    actions = [
        act("wait", "delay", "set", kind="duration", seconds=2 * 86400),
        act("set", "set_property", property="after_delay", value=True),
    ]
    async with running_worker(
        time_skipping_env.client, tmp_path, task_queue, search_attributes=False
    ) as h:
        h.store.put(tenant_id, "contact", "c1")
        start = await time_skipping_env.get_current_time()
        handle = await h.start(enrollment(tenant_id, "c1", definition(actions)))
        assert (await handle.result()).status == "completed"
        done = await _finished(h, tenant_id, handle.id, "set")
        assert done - start >= timedelta(days=2)
        assert (await h.store.get(tenant_id, "contact", "c1")).properties["after_delay"] is True


async def test_until_date_and_passed_date_end(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, tenant_id: str
) -> None:
    async with running_worker(
        time_skipping_env.client, tmp_path, task_queue, search_attributes=False
    ) as h:
        now = await time_skipping_env.get_current_time()
        target = (now + timedelta(days=10)).replace(microsecond=0)
        ok = [
            act("wait", "delay", "set", kind="until_date", date=target.isoformat()),
            act("set", "set_property", property="x", value=1),
        ]
        h.store.put(tenant_id, "contact", "c1")
        handle = await h.start(enrollment(tenant_id, "c1", definition(ok)))
        assert (await handle.result()).status == "completed"
        assert await _finished(h, tenant_id, handle.id, "set") >= target
        passed = [
            act(
                "wait",
                "delay",
                "set",
                kind="until_date",
                date=(now - timedelta(days=1)).isoformat(),
                if_passed="end",
            ),
            act("set", "set_property", property="y", value=1),
        ]
        h.store.put(tenant_id, "contact", "c2")
        result = await h.run(enrollment(tenant_id, "c2", definition(passed)))
        assert result.status == "completed" and "passed" in result.reason
        assert "y" not in (await h.store.get(tenant_id, "contact", "c2")).properties


async def test_until_date_property_with_offset_and_time(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, tenant_id: str
) -> None:
    async with running_worker(
        time_skipping_env.client, tmp_path, task_queue, search_attributes=False
    ) as h:
        now = await time_skipping_env.get_current_time()
        renewal = (now + timedelta(days=30)).date()
        h.store.put(tenant_id, "contact", "c1", renewal_date=renewal.isoformat())
        actions = [
            act(
                "wait",
                "delay",
                "set",
                kind="until_date_property",
                date_property="renewal_date",
                offset_days=-7,
                time_of_day="09:30",
            ),
            act("set", "set_property", property="reminded", value=True),
        ]
        defn = definition(actions, settings=WorkflowSettings(time_zone=TZ))
        handle = await h.start(enrollment(tenant_id, "c1", defn))
        assert (await handle.result()).status == "completed"
        expected = datetime.combine(
            renewal - timedelta(days=7), datetime.min.time(), tzinfo=ZoneInfo(TZ)
        ).replace(hour=9, minute=30)
        done = await _finished(h, tenant_id, handle.id, "set")
        assert expected <= done < expected + timedelta(minutes=5)


async def test_until_weekday_and_time_in_workflow_time_zone(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, tenant_id: str
) -> None:
    actions = [
        act(
            "wait", "delay", "set", kind="until_weekday_time", days_of_week=[2], time_of_day="08:15"
        ),
        act("set", "set_property", property="x", value=1),
    ]
    async with running_worker(
        time_skipping_env.client, tmp_path, task_queue, search_attributes=False
    ) as h:
        h.store.put(tenant_id, "contact", "c1")
        handle = await h.start(
            enrollment(
                tenant_id, "c1", definition(actions, settings=WorkflowSettings(time_zone=TZ))
            )
        )
        await handle.result()
        local = (await _finished(h, tenant_id, handle.id, "set")).astimezone(ZoneInfo(TZ))
        assert local.isoweekday() == 2 and (local.hour, local.minute) == (8, 15)


async def test_action_outside_execution_window_waits_for_next_opening(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, tenant_id: str
) -> None:
    """Window Mon-Fri 09:00-17:00 Copenhagen, today+tomorrow blocked: runs at the next opening
    (+ a spread under 15 min). The delay before it is not rescheduled."""
    async with running_worker(
        time_skipping_env.client, tmp_path, task_queue, search_attributes=False
    ) as h:
        now = await time_skipping_env.get_current_time()
        local_today = now.astimezone(ZoneInfo(TZ)).date()
        blocked = [local_today, local_today + timedelta(days=1)]
        settings = WorkflowSettings(
            time_zone=TZ,
            blocked_dates=blocked,
            execution_window=ExecutionWindow(
                days_of_week=[1, 2, 3, 4, 5], start_time="09:00", end_time="17:00"
            ),
        )
        actions = [
            act("wait", "delay", "set", kind="duration", seconds=60),
            act("set", "set_property", property="x", value=1),
        ]
        h.store.put(tenant_id, "contact", "c1")
        handle = await h.start(enrollment(tenant_id, "c1", definition(actions, settings=settings)))
        await handle.result()
        done = (await _finished(h, tenant_id, handle.id, "set")).astimezone(ZoneInfo(TZ))
        first_allowed = local_today + timedelta(days=2)
        while first_allowed.isoweekday() > 5:
            first_allowed += timedelta(days=1)
        opening = datetime.combine(first_allowed, datetime.min.time(), tzinfo=ZoneInfo(TZ)).replace(
            hour=9
        )
        assert opening <= done < opening + timedelta(minutes=15)
        delay_done = await _finished(h, tenant_id, handle.id, "set")
        assert delay_done.date() >= first_allowed


async def test_unenroll_signal_ends_the_run_during_a_delay_and_records_why(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, tenant_id: str
) -> None:
    actions = [
        act("wait", "delay", "set", kind="duration", seconds=7 * 86400),
        act("set", "set_property", property="x", value=1),
    ]
    async with running_worker(
        time_skipping_env.client, tmp_path, task_queue, search_attributes=False
    ) as h:
        h.store.put(tenant_id, "contact", "c1")
        handle = await h.start(enrollment(tenant_id, "c1", definition(actions)))
        with time_skipping_env.auto_time_skipping_disabled():
            for _ in range(50):
                if await handle.query(WORKFLOW_QUERY_CURRENT_STEP, result_type=str) == "wait":
                    break
            assert await handle.query(WORKFLOW_QUERY_CURRENT_STEP, result_type=str) == "wait"
            await handle.signal(
                WORKFLOW_SIGNAL_UNENROLL,
                UnenrollSignal(reason=UnenrollReason.GOAL_MET, detail="deal won"),
            )
        result = await handle.result()
        assert (result.status, result.reason) == ("unenrolled", "goal_met: deal won")
        assert "x" not in (await h.store.get(tenant_id, "contact", "c1")).properties
        run = await h.history.get_run(tenant_id=tenant_id, run_workflow_id=handle.id)
        assert run is not None and (run.status, run.reason) == ("unenrolled", "goal_met: deal won")


def _form_event(tenant_id: str, form_id: str) -> ChangeEvent:
    return ChangeEvent(
        event_id=f"e-{form_id}",
        tenant_id=tenant_id,
        event_type=ChangeEventType.FORM_SUBMITTED,
        object_type="contact",
        record_id="c1",
        occurred_at=datetime.now(UTC),
        form_id=form_id,
    )


def _until_event() -> list[Action]:
    wait = Action(
        action_id="wait",
        action_type="delay",
        fields={
            "kind": "until_event",
            "seconds": 3 * 86400,
            "event": {"event_type": "EVENT_TYPE_FORM_SUBMITTED", "form_id": "demo"},
        },
        branches=[branch("timeout", "on-timeout")],
    )
    wait.connection = act("x", "set_property", "on-event").connection
    return [
        wait,
        act("on-event", "set_property", property="path", value="event"),
        act("on-timeout", "set_property", property="path", value="timeout"),
    ]


async def test_until_event_continues_on_the_event_and_ignores_others(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, tenant_id: str
) -> None:
    async with running_worker(
        time_skipping_env.client, tmp_path, task_queue, search_attributes=False
    ) as h:
        h.store.put(tenant_id, "contact", "c1")
        handle = await h.start(enrollment(tenant_id, "c1", definition(_until_event())))
        with time_skipping_env.auto_time_skipping_disabled():
            for _ in range(50):
                if await handle.query(WORKFLOW_QUERY_CURRENT_STEP, result_type=str) == "wait":
                    break
            await handle.signal(
                WORKFLOW_SIGNAL_EVENT, RecordEventSignal(event=_form_event(tenant_id, "other"))
            )
            await handle.signal(
                WORKFLOW_SIGNAL_EVENT, RecordEventSignal(event=_form_event(tenant_id, "demo"))
            )
        assert (await handle.result()).status == "completed"
        assert (await h.store.get(tenant_id, "contact", "c1")).properties["path"] == "event"


async def test_until_event_takes_the_timeout_branch_after_the_maximum_wait(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, tenant_id: str
) -> None:
    async with running_worker(
        time_skipping_env.client, tmp_path, task_queue, search_attributes=False
    ) as h:
        h.store.put(tenant_id, "contact", "c1")
        start = await time_skipping_env.get_current_time()
        handle = await h.start(enrollment(tenant_id, "c1", definition(_until_event())))
        assert (await handle.result()).status == "completed"
        assert (await h.store.get(tenant_id, "contact", "c1")).properties["path"] == "timeout"
        assert await _finished(h, tenant_id, handle.id, "on-timeout") - start >= timedelta(days=3)


def test_blocked_dates_are_dates() -> None:
    assert WorkflowSettings(blocked_dates=["2026-12-24"]).blocked_dates == [date(2026, 12, 24)]  # type: ignore[list-item]
