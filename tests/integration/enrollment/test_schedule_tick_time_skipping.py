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
    tmp_path: Path, time_skipping_env: WorkflowEnvironment, tenant_id: str
) -> None:
    env = time_skipping_env
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
        assert [r.trigger for r in ledger_rows] == ["schedule#0"]
        assert not await enroller.ledger.history(
            tenant_id=tenant_id, workflow_id="renewals", record_id="later"
        )
    await records.close()
    await engine.dispose()
