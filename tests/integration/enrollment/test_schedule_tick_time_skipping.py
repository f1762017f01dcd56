"""Date-property schedules on the time-skipping server: a tick three days later enrolls the
records whose date is that day in the workflow's time zone (and nobody else)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from enrollment.activities import EnrollmentActivities
from enrollment.config import EnrollmentConfig
from enrollment.db import migrate
from enrollment.enroller import Enroller
from enrollment.ledger import Ledger
from enrollment.payloads import ScheduleTickInput, TickResult
from enrollment.starter import Starter
from enrollment.temporal_workflows import WORKFLOWS
from enrollment.trigger_index import TriggerIndex
from enrollment.workflows import ActiveWorkflows
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from crmflow.db import create_engine, session_factory
from crmflow.model.workflow import PublishedRevision, WorkflowDefinition
from crmflow.records.sql import SqlRecordStore
from tests.integration.enrollment.standin import StandInEnrolledRecord

pytestmark = pytest.mark.temporal


async def test_date_property_tick_after_a_long_wait(
    tmp_path: Path, ts_env: WorkflowEnvironment, tenant_id: str
) -> None:
    env = ts_env
    client = env.client
    url = f"sqlite+aiosqlite:///{tmp_path / 'enrollment.db'}"
    await migrate(url)
    engine = create_engine(url)
    records = await SqlRecordStore.open(f"sqlite+aiosqlite:///{tmp_path / 'crm.db'}")
    exec_q, own_q = f"exec-{uuid.uuid4().hex[:6]}", f"enr-{uuid.uuid4().hex[:6]}"
    enroller = Enroller(
        ledger=Ledger(session_factory(engine)),
        starter=Starter(client, exec_q),
        records=records,
        clock=lambda: now_holder[0],
    )
    index = TriggerIndex()
    workflows = ActiveWorkflows(index=index, ledger=enroller.ledger, enroller=enroller)
    start = await env.get_current_time()
    now_holder = [start]
    # renewal in 3 days, in Copenhagen; remind one day before (offset -1) -> tick on day 2
    tz_day = (start + timedelta(days=3)).astimezone(ZoneInfo("Europe/Copenhagen")).date()
    await records.create(
        tenant_id, "contact", {"date_of_birth": tz_day.isoformat()}, record_id="due"
    )
    await records.create(
        tenant_id,
        "contact",
        {"date_of_birth": (tz_day + timedelta(days=1)).isoformat()},
        record_id="later",
    )
    d = WorkflowDefinition.model_validate(
        {
            "workflow_id": "renewals",
            "tenant_id": tenant_id,
            "object_type": "contact",
            "settings": {"time_zone": "Europe/Copenhagen"},
            "enrollment": {
                "triggers": [
                    {
                        "schedule": {
                            "frequency": "SCHEDULE_FREQUENCY_DATE_PROPERTY",
                            "date_property": "date_of_birth",
                            "offset_days": -1,
                            "time_of_day": "09:00",
                        }
                    }
                ]
            },
        }
    )
    await workflows.activate(
        PublishedRevision(
            tenant_id=tenant_id,
            workflow_id="renewals",
            revision=1,
            published_at=start,
            definition=d,
        ),
        enroll_existing=False,
        now=start,
    )
    acts = EnrollmentActivities(
        index=index, enroller=enroller, records=records, config=EnrollmentConfig()
    )
    async with (
        Worker(client, task_queue=own_q, workflows=WORKFLOWS, activities=acts.all()),
        Worker(client, task_queue=exec_q, workflows=[StandInEnrolledRecord]),
    ):
        # the tick fires two days from now (time skips); its day is tz_day - 1
        handle = await client.start_workflow(
            "EnrollmentScheduleTick",
            ScheduleTickInput(
                tenant_id=tenant_id, workflow_id="renewals", revision=1, trigger_index=0
            ),
            id=f"tick-{uuid.uuid4().hex[:6]}",
            task_queue=own_q,
            start_delay=timedelta(days=2),
            result_type=TickResult,
        )
        result = await handle.result()
        assert result.enrolled == 1  # "later" is a day too late; "due" enrolls
        ledger_rows = await enroller.ledger.history(
            tenant_id=tenant_id, workflow_id="renewals", record_id="due"
        )
        assert [(r.trigger, r.status) for r in ledger_rows] == [("schedule#0", "running")]
        desc = await client.get_workflow_handle(ledger_rows[0].run_workflow_id).describe()
        assert desc.workflow_type == "EnrolledRecord"
        assert not await enroller.ledger.history(
            tenant_id=tenant_id, workflow_id="renewals", record_id="later"
        )
    await records.close()
    await enroller.ledger.close()
    await engine.dispose()


async def test_maintenance_workflow_prunes_and_recovers(
    tmp_path: Path, ts_env: WorkflowEnvironment, tenant_id: str
) -> None:
    """The daily job's workflow: retention through the ledger, then the recovery sweep."""
    from enrollment.payloads import MaintenanceResult

    env = ts_env
    url = f"sqlite+aiosqlite:///{tmp_path / 'enrollment.db'}"
    await migrate(url)
    engine = create_engine(url)
    exec_q, own_q = f"exec-{uuid.uuid4().hex[:6]}", f"enr-{uuid.uuid4().hex[:6]}"
    start = await env.get_current_time()
    clock = [start]
    enroller = Enroller(
        ledger=Ledger(session_factory(engine)),
        starter=Starter(env.client, exec_q),
        records=None,
        clock=lambda: clock[0],
    )
    index = TriggerIndex()
    workflows = ActiveWorkflows(index=index, ledger=enroller.ledger, enroller=enroller)
    d = WorkflowDefinition.model_validate(
        {
            "workflow_id": "wf",
            "tenant_id": tenant_id,
            "object_type": "contact",
            "enrollment": {"triggers": [{"manual": {}}]},
        }
    )
    await workflows.activate(
        PublishedRevision(
            tenant_id=tenant_id, workflow_id="wf", revision=1, published_at=start, definition=d
        ),
        enroll_existing=False,
        now=start,
    )
    # a ledger row left pending by a "crash" two minutes ago
    row = await enroller.ledger.reserve(
        tenant_id=tenant_id,
        workflow_id="wf",
        revision=1,
        object_type="contact",
        record_id="r1",
        trigger="manual",
        event_id="",
        now=start - timedelta(minutes=2),
        run_id_for=lambda n: f"enroll/{tenant_id}/wf/contact-r1/{n}",
    )
    assert row is not None
    acts = EnrollmentActivities(
        index=index, enroller=enroller, records=None, config=EnrollmentConfig()
    )
    async with (
        Worker(env.client, task_queue=own_q, workflows=WORKFLOWS, activities=acts.all()),
        Worker(env.client, task_queue=exec_q, workflows=[StandInEnrolledRecord]),
    ):
        result = await env.client.execute_workflow(
            "EnrollmentMaintenance",
            id=f"m-{uuid.uuid4().hex[:6]}",
            task_queue=own_q,
            result_type=MaintenanceResult,
        )
        assert result.recovered == 1 and set(result.pruned) >= {"history", "facts"}
        desc = await env.client.get_workflow_handle(row.run_workflow_id).describe()
        assert desc.workflow_type == "EnrolledRecord"
    await enroller.ledger.close()
    await engine.dispose()
