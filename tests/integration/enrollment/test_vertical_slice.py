"""Publish -> ActivateRevision; a record change meeting the trigger -> IngestEvents -> exactly one
EnrolledRecord workflow with the deterministic id, search attributes and input."""

from __future__ import annotations

import grpc
import pytest

from crmflow.api.enrollment.v1 import enrollment_service_pb2 as pb
from crmflow.grpc.errors import bad_request_fields
from crmflow.model.enrollment import EnrollmentInput
from crmflow.temporal import search_attributes as sa
from crmflow.temporal.ids import enrollment_workflow_id
from tests.integration.enrollment.conftest import Service
from tests.integration.enrollment.helpers import criteria, revision, update

pytestmark = pytest.mark.temporal

LEAD = {"property": "lifecycle", "operator": "eq", "value": "lead"}


async def test_trigger_enrolls_exactly_once(service: Service, tenant_id: str) -> None:
    await service.stub.ActivateRevision(
        pb.ActivateRevisionRequest(
            tenant_id=tenant_id,
            revision=revision(tenant_id, "wf-1", {"triggers": [criteria(LEAD)]}),
        )
    )
    ev = update(tenant_id, "c1", {"lifecycle": ("subscriber", "lead")})
    res = await service.stub.IngestEvents(pb.IngestEventsRequest(tenant_id=tenant_id, events=[ev]))
    [r] = res.results
    assert not r.error and not r.duplicate
    [o] = r.outcomes
    run_id = enrollment_workflow_id(tenant_id, "wf-1", "contact", "c1", 1)
    assert (o.outcome, o.run_workflow_id, o.enrollment_number) == ("enrolled", run_id, 1)

    # the same event again: a duplicate, same answer, nothing new
    res = await service.stub.IngestEvents(pb.IngestEventsRequest(tenant_id=tenant_id, events=[ev]))
    assert res.results[0].duplicate and res.results[0].outcomes[0].run_workflow_id == run_id
    # the same change under another event id: already enrolled (never twice at once)
    ev2 = update(tenant_id, "c1", {"lifecycle": ("subscriber", "lead")})
    res = await service.stub.IngestEvents(pb.IngestEventsRequest(tenant_id=tenant_id, events=[ev2]))
    assert res.results[0].outcomes[0].outcome == "already_enrolled"

    client = service.env.client
    desc = await client.get_workflow_handle(run_id).describe()
    assert desc.workflow_type == "EnrolledRecord"
    assert desc.task_queue == service.settings.temporal.task_queue
    attrs = desc.typed_search_attributes
    assert attrs.get(sa.TENANT_ID) == tenant_id
    assert attrs.get(sa.WORKFLOW_ID) == "wf-1"
    assert attrs.get(sa.REVISION) == 1
    assert attrs.get(sa.RECORD_ID) == "c1"
    assert attrs.get(sa.OBJECT_TYPE) == "contact"
    hist = await client.get_workflow_handle(run_id).fetch_history()
    started = hist.events[0].workflow_execution_started_event_attributes
    [payload] = client.data_converter.payload_converter.from_payloads(
        started.input.payloads, [EnrollmentInput]
    )
    assert payload.record_id == "c1" and payload.trigger.startswith("criteria")
    assert payload.definition.workflow_id == "wf-1"
    count = await client.count_workflows(f"CrmflowTenantId = '{tenant_id}'")
    assert count.count == 1


async def test_no_transition_no_enrollment(service: Service, tenant_id: str) -> None:
    await service.stub.ActivateRevision(
        pb.ActivateRevisionRequest(
            tenant_id=tenant_id,
            revision=revision(tenant_id, "wf-1", {"triggers": [criteria(LEAD)]}),
        )
    )
    # already a lead before the change: no transition
    ev = update(tenant_id, "c1", {"lifecycle": ("lead", "lead")}, snapshot={"lifecycle": "lead"})
    other = update(tenant_id, "c2", {"city": ("a", "b")}, snapshot={"lifecycle": "lead"})
    res = await service.stub.IngestEvents(
        pb.IngestEventsRequest(tenant_id=tenant_id, events=[ev, other])
    )
    assert [list(r.outcomes) for r in res.results] == [[], []]


async def test_manual_enrollment_and_bad_input(service: Service, tenant_id: str) -> None:
    await service.stub.ActivateRevision(
        pb.ActivateRevisionRequest(
            tenant_id=tenant_id,
            revision=revision(tenant_id, "wf-m", {"triggers": [{"manual": {}}]}),
        )
    )
    await service.records.create(tenant_id, "contact", {"email": "a@b.c"}, record_id="r1")
    res = await service.stub.EnrollManually(
        pb.EnrollManuallyRequest(tenant_id=tenant_id, workflow_id="wf-m", record_ids=["r1", "r1"])
    )
    assert [o.outcome for o in res.outcomes] == ["enrolled", "already_enrolled"]

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await service.stub.EnrollManually(
            pb.EnrollManuallyRequest(tenant_id=tenant_id, workflow_id="nope", record_ids=["r1"])
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await service.stub.EnrollManually(
            pb.EnrollManuallyRequest(tenant_id=tenant_id, workflow_id="wf-m", record_ids=["ghost"])
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND

    good = update(tenant_id, "c9", {"x": (1, 2)})
    bad = update(tenant_id, "c9", {"x": (1, 2)})
    bad.ClearField("occurred_at")
    res = await service.stub.IngestEvents(
        pb.IngestEventsRequest(tenant_id=tenant_id, events=[bad, good])
    )
    assert res.results[0].error_code == "INVALID_ARGUMENT"
    assert res.results[0].error_field == "events[0].occurred_at"
    assert not res.results[1].error

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await service.stub.ActivateRevision(
            pb.ActivateRevisionRequest(
                tenant_id=tenant_id,
                revision=revision(
                    tenant_id,
                    "wf-b",
                    {"triggers": [criteria({"property": "x", "operator": "bogus", "value": 1})]},
                ),
            )
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert any("operator" in f for f in bad_request_fields(err.value))
