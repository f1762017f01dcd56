"""The rest of the EnrollmentService through a real gRPC server and Temporal: streaming ingest,
unenrollment reaching the running workflow, turning off, review and explain, bad input."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from crmflow.api.enrollment.v1 import enrollment_service_pb2 as pb
from crmflow.api.workflow.v1 import workflow_pb2
from crmflow.grpc.errors import bad_request_fields
from crmflow.model.convert import to_proto
from crmflow.model.records import ChangeEventType
from crmflow.model.workflow import WorkflowDefinition
from crmflow.temporal.ids import enrollment_workflow_id
from tests.integration.enrollment.conftest import Service
from tests.integration.enrollment.helpers import criteria, revision, update

pytestmark = pytest.mark.temporal

LEAD = {"property": "lifecyclestage", "operator": "eq", "value": "lead"}
BIG = {"property": "num_employees", "operator": "gt", "value": 100}


async def activate(service: Service, tenant: str, wf: str, enrollment: dict, **kw) -> None:  # type: ignore[no-untyped-def,type-arg]
    await service.stub.ActivateRevision(
        pb.ActivateRevisionRequest(
            tenant_id=tenant, revision=revision(tenant, wf, enrollment, **kw)
        )
    )


async def test_stream_ingest_reports_item_by_item(service: Service, tenant_id: str) -> None:
    await activate(service, tenant_id, "wf", {"triggers": [criteria(LEAD)]})
    bad = update(tenant_id, "c2", {"num_employees": (1, "lots")})

    async def requests() -> AsyncIterator[pb.IngestEventStreamRequest]:
        yield pb.IngestEventStreamRequest(
            tenant_id=tenant_id,
            events=[
                update(
                    tenant_id,
                    "c1",
                    {"lifecyclestage": ("subscriber", "lead")},
                    snapshot={"lifecyclestage": "lead"},
                )
            ],
        )
        yield pb.IngestEventStreamRequest(
            tenant_id=tenant_id,
            events=[
                bad,
                update(
                    tenant_id,
                    "c3",
                    {"lifecyclestage": ("subscriber", "lead")},
                    snapshot={"lifecyclestage": "lead"},
                ),
            ],
        )

    res = await service.stub.IngestEventStream(requests())
    assert [r.outcomes[0].outcome if r.outcomes else r.error_code for r in res.results] == [
        "enrolled",
        "INVALID_ARGUMENT",
        "enrolled",
    ]
    assert res.results[1].error_field == "events[1].changes[0].new_value"
    assert "num_employees" in res.results[1].error


async def test_unenroll_reaches_the_running_workflow(service: Service, tenant_id: str) -> None:
    goal = {"filters": [{"property": "lifecyclestage", "operator": "eq", "value": "customer"}]}
    await activate(service, tenant_id, "wf", {"triggers": [criteria(LEAD)], "goal": goal})
    await service.stub.IngestEvents(
        pb.IngestEventsRequest(
            tenant_id=tenant_id,
            events=[
                update(
                    tenant_id,
                    r,
                    {"lifecyclestage": ("subscriber", "lead")},
                    snapshot={"lifecyclestage": "lead"},
                )
                for r in ("c1", "c2")
            ],
        )
    )
    client = service.env.client
    # goal met -> "unenroll" signal -> the run ends with that reason
    res = await service.stub.IngestEvents(
        pb.IngestEventsRequest(
            tenant_id=tenant_id,
            events=[
                update(
                    tenant_id,
                    "c1",
                    {"lifecyclestage": ("lead", "customer")},
                    snapshot={"lifecyclestage": "customer"},
                )
            ],
        )
    )
    assert res.results[0].outcomes[0].outcome == "unenrolled"
    run1 = enrollment_workflow_id(tenant_id, "wf", "contact", "c1", 1)
    assert await client.get_workflow_handle(run1).result() == "goal_met"
    # by hand
    res = await service.stub.Unenroll(
        pb.UnenrollRequest(
            tenant_id=tenant_id, workflow_id="wf", record_ids=["c2", "c9"], reason="asked"
        )
    )
    assert [o.outcome for o in res.outcomes] == ["unenrolled", "not_enrolled"]
    run2 = enrollment_workflow_id(tenant_id, "wf", "contact", "c2", 1)
    assert await client.get_workflow_handle(run2).result() == "manual"


async def test_deleted_record_and_turning_off(service: Service, tenant_id: str) -> None:
    await activate(service, tenant_id, "wf", {"triggers": [criteria(LEAD)]})
    ev = update(
        tenant_id,
        "c1",
        {"lifecyclestage": ("subscriber", "lead")},
        snapshot={"lifecyclestage": "lead"},
    )
    await service.stub.IngestEvents(pb.IngestEventsRequest(tenant_id=tenant_id, events=[ev]))
    gone = update(tenant_id, "c1", {}, event_type=ChangeEventType.RECORD_DELETED)
    res = await service.stub.IngestEvents(
        pb.IngestEventsRequest(tenant_id=tenant_id, events=[gone])
    )
    assert res.results[0].outcomes[0].outcome == "unenrolled"
    run = enrollment_workflow_id(tenant_id, "wf", "contact", "c1", 1)
    assert await service.env.client.get_workflow_handle(run).result() == "record_deleted"

    await service.stub.DeactivateWorkflow(
        pb.DeactivateWorkflowRequest(tenant_id=tenant_id, workflow_id="wf")
    )
    ev = update(
        tenant_id,
        "c5",
        {"lifecyclestage": ("subscriber", "lead")},
        snapshot={"lifecyclestage": "lead"},
    )
    res = await service.stub.IngestEvents(pb.IngestEventsRequest(tenant_id=tenant_id, events=[ev]))
    assert list(res.results[0].outcomes) == []
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await service.stub.DeactivateWorkflow(
            pb.DeactivateWorkflowRequest(tenant_id=tenant_id, workflow_id="ghost")
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_estimate_save_list_and_explain(service: Service, tenant_id: str) -> None:
    store = service.records
    for i in range(6):
        await store.create(
            tenant_id,
            "contact",
            {
                "lifecyclestage": "lead" if i < 5 else "customer",
                "num_employees": 50 * i,
            },
            record_id=f"c{i}",
        )
    d = WorkflowDefinition.model_validate(
        {
            "object_type": "contact",
            "enrollment": {"triggers": [criteria(LEAD, BIG)]},
        }
    )
    definition = to_proto(d, workflow_pb2.WorkflowDefinition)
    est = await service.stub.EstimateEnrollment(
        pb.EstimateEnrollmentRequest(tenant_id=tenant_id, definition=definition, sample_size=1)
    )
    assert est.count == 2 and len(est.sample_record_ids) == 1 and est.complete  # c3, c4
    saved = await service.stub.SaveEstimateAsList(
        pb.SaveEstimateAsListRequest(
            tenant_id=tenant_id, definition=definition, list_name="big leads"
        )
    )
    assert saved.count == 2
    assert sorted(await store.list_members(tenant_id, saved.list_id)) == ["c3", "c4"]

    await activate(
        service,
        tenant_id,
        "wf",
        {"triggers": [criteria(LEAD, BIG)], "suppression_list_ids": [saved.list_id]},
    )
    why = await service.stub.ExplainEnrollment(
        pb.ExplainEnrollmentRequest(tenant_id=tenant_id, workflow_id="wf", record_id="c1")
    )
    assert not why.would_enroll and why.reason == "not_matching"
    trace = {t.property: (t.seen.number_value, t.matched) for t in why.triggers[0].trace}
    assert trace["num_employees"] == (50.0, False)
    why = await service.stub.ExplainEnrollment(
        pb.ExplainEnrollmentRequest(tenant_id=tenant_id, workflow_id="wf", record_id="c3")
    )
    assert (why.would_enroll, why.reason) == (False, "suppressed")
    assert list(why.suppressed_by_list_ids) == [saved.list_id]

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await service.stub.ExplainEnrollment(
            pb.ExplainEnrollmentRequest(tenant_id=tenant_id, workflow_id="wf", record_id="nobody")
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    bad = WorkflowDefinition.model_validate(
        {
            "object_type": "contact",
            "enrollment": {
                "triggers": [criteria({"property": "x", "operator": "nope", "value": 1})]
            },
        }
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await service.stub.EstimateEnrollment(
            pb.EstimateEnrollmentRequest(
                tenant_id=tenant_id, definition=to_proto(bad, workflow_pb2.WorkflowDefinition)
            )
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert any(f.endswith("operator") for f in bad_request_fields(err.value))


async def test_events_reach_running_enrollments(service: Service, tenant_id: str) -> None:
    await activate(service, tenant_id, "wf", {"triggers": [criteria(LEAD)]})
    ev = update(
        tenant_id,
        "c1",
        {"lifecyclestage": ("subscriber", "lead")},
        snapshot={"lifecyclestage": "lead"},
    )
    await service.stub.IngestEvents(pb.IngestEventsRequest(tenant_id=tenant_id, events=[ev]))
    form = update(tenant_id, "c1", {}, event_type=ChangeEventType.FORM_SUBMITTED, form_id="f1")
    await service.stub.IngestEvents(pb.IngestEventsRequest(tenant_id=tenant_id, events=[form]))
    run = enrollment_workflow_id(tenant_id, "wf", "contact", "c1", 1)
    seen = await service.env.client.get_workflow_handle(run).query("seen_events")
    assert seen == [form.event_id]  # the enrolling event itself is not echoed back
