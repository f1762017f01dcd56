"""Time-relative criteria re-checked by a Temporal Schedule (dev server): the schedule exists
while the workflow has such criteria (paused when off, removed with them), and a run enrolls
the record that crossed the boundary since activation, not the one that matched already."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import ScheduleIntervalSpec
from temporalio.service import RPCError

from crmflow.api.enrollment.v1 import enrollment_service_pb2 as pb
from crmflow.records.port import PropertyDefinition, PropertyType
from crmflow.temporal.ids import enrollment_workflow_id
from tests.helpers import eventually
from tests.integration.enrollment.conftest import Service
from tests.integration.enrollment.helpers import criteria, revision

pytestmark = pytest.mark.temporal

STALE = {"property": "last_activity", "operator": "more_than_days_ago", "value": 7}
LEAD = {"property": "lifecyclestage", "operator": "eq", "value": "lead"}


async def test_time_recheck_schedule_enrolls_records_crossing_the_boundary(
    service: Service, tenant_id: str
) -> None:
    store = service.records
    await store.define_property(
        tenant_id,
        PropertyDefinition(object_type="contact", name="last_activity", type=PropertyType.DATETIME),
    )
    now = datetime.now(UTC)
    crossing_at = now + timedelta(seconds=3)
    for rid, when in {
        "old": now - timedelta(days=30),
        "crossing": crossing_at - timedelta(days=7),
        "young": now - timedelta(days=1),
    }.items():
        await store.create(
            tenant_id,
            "contact",
            {"lifecyclestage": "lead", "last_activity": when.isoformat()},
            record_id=rid,
        )
    res = await service.stub.ActivateRevision(
        pb.ActivateRevisionRequest(
            tenant_id=tenant_id,
            revision=revision(tenant_id, "wf-t", {"triggers": [criteria(STALE, LEAD)]}),
        )
    )
    sid = f"enroll-recheck/{tenant_id}/wf-t"
    assert list(res.schedule_ids) == [sid]
    client = service.env.client
    handle = client.get_schedule_handle(sid)
    desc = await handle.describe()
    assert desc.schedule.spec.intervals == [ScheduleIntervalSpec(every=timedelta(minutes=60))]
    assert not desc.schedule.state.paused

    await asyncio.sleep(max(0.0, (crossing_at - datetime.now(UTC)).total_seconds()) + 1)
    await handle.trigger()

    async def enrolled() -> bool:
        n = await client.count_workflows(
            f"CrmflowTenantId = '{tenant_id}' AND WorkflowType = 'EnrolledRecord'"
        )
        return n.count == 1

    await eventually(enrolled, timeout=20)
    run = enrollment_workflow_id(tenant_id, "wf-t", "contact", "crossing", 1)
    assert (await client.get_workflow_handle(run).describe()).workflow_type == "EnrolledRecord"
    # the run finished: it scanned the crossing window only and enrolled exactly one record
    tick = (await handle.describe()).info.recent_actions[-1].action
    result = await client.get_workflow_handle(tick.workflow_id).result()
    assert (result["enrolled"], result["scanned"]) == (1, 1)
    for rid in ("old", "young"):
        listed = await service.stub.ListRecordEnrollments(
            pb.ListRecordEnrollmentsRequest(
                tenant_id=tenant_id, object_type="contact", record_id=rid
            )
        )
        assert not listed.enrollments

    await service.stub.DeactivateWorkflow(
        pb.DeactivateWorkflowRequest(tenant_id=tenant_id, workflow_id="wf-t")
    )
    assert (await handle.describe()).schedule.state.paused
    # a revision without time-relative criteria drops the schedule
    await service.stub.ActivateRevision(
        pb.ActivateRevisionRequest(
            tenant_id=tenant_id,
            revision=revision(tenant_id, "wf-t", {"triggers": [criteria(LEAD)]}, revision=2),
        )
    )
    with pytest.raises(RPCError):
        await handle.describe()
