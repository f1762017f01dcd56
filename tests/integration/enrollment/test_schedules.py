"""Schedule triggers as Temporal Schedules (dev server): created in the workflow's time zone,
paused when the workflow is off, removed with the trigger; a tick enrolls matching records."""

from __future__ import annotations

import pytest
from temporalio.service import RPCError

from crmflow.api.enrollment.v1 import enrollment_service_pb2 as pb
from tests.helpers import eventually
from tests.integration.enrollment.conftest import Service
from tests.integration.enrollment.helpers import criteria, revision

pytestmark = pytest.mark.temporal

LEAD = {"property": "lifecyclestage", "operator": "eq", "value": "lead"}


async def test_schedule_lifecycle_and_tick(service: Service, tenant_id: str) -> None:
    daily = {
        "schedule": {
            "frequency": "SCHEDULE_FREQUENCY_DAILY",
            "time_of_day": "09:30",
            "filter": {"filters": [LEAD]},
        }
    }
    weekly = {
        "schedule": {
            "frequency": "SCHEDULE_FREQUENCY_WEEKLY",
            "time_of_day": "08:00",
            "days_of_week": [1, 7],
        }
    }
    tz = {"time_zone": "Europe/Copenhagen"}
    res = await service.stub.ActivateRevision(
        pb.ActivateRevisionRequest(
            tenant_id=tenant_id,
            revision=revision(tenant_id, "wf-s", {"triggers": [daily, weekly]}, settings=tz),
        )
    )
    sid = f"enroll-schedule/{tenant_id}/wf-s/0"
    assert list(res.schedule_ids) == [sid, f"enroll-schedule/{tenant_id}/wf-s/1"]
    client = service.env.client
    desc = await client.get_schedule_handle(sid).describe()
    spec = desc.schedule.spec
    assert spec.time_zone_name == "Europe/Copenhagen"
    cal = spec.calendars[0] if spec.calendars else None
    if cal is not None:  # the server may hand calendars back as structured specs
        assert cal.hour[0].start == 9 and cal.minute[0].start == 30
    assert not desc.schedule.state.paused
    weekly_desc = await client.get_schedule_handle(f"enroll-schedule/{tenant_id}/wf-s/1").describe()
    wcal = weekly_desc.schedule.spec.calendars
    if wcal:
        assert sorted(r.start for r in wcal[0].day_of_week) == [0, 1]  # Sunday, Monday

    for i, stage in enumerate(["lead", "lead", "customer"]):
        await service.records.create(
            tenant_id, "contact", {"lifecyclestage": stage}, record_id=f"s{i}"
        )
    await client.get_schedule_handle(sid).trigger()

    async def enrolled() -> int:
        n = await client.count_workflows(
            f"CrmflowTenantId = '{tenant_id}' AND WorkflowType = 'EnrolledRecord'"
        )
        return n.count == 2

    await eventually(enrolled, timeout=20)

    await service.stub.DeactivateWorkflow(
        pb.DeactivateWorkflowRequest(tenant_id=tenant_id, workflow_id="wf-s")
    )
    desc = await client.get_schedule_handle(sid).describe()
    assert desc.schedule.state.paused

    # a new revision without the schedule trigger removes its schedule
    res = await service.stub.ActivateRevision(
        pb.ActivateRevisionRequest(
            tenant_id=tenant_id,
            revision=revision(tenant_id, "wf-s", {"triggers": [criteria(LEAD)]}, revision=2),
        )
    )
    assert list(res.schedule_ids) == []
    with pytest.raises(RPCError):
        await client.get_schedule_handle(sid).describe()
