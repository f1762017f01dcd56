""" "Has been enrolled in workflow X" through a real gRPC server and Temporal: an enrollment in A
starts B's workflow, ListRecordEnrollments and Explain read the ledger's facts, manual
unenrollment cascades, bad input is refused naming the field."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from crmflow.api.enrollment.v1 import enrollment_service_pb2 as pb
from crmflow.api.workflow.v1 import workflow_pb2
from crmflow.grpc.errors import bad_request_fields
from crmflow.model.convert import to_proto
from crmflow.model.workflow import WorkflowDefinition
from crmflow.temporal.ids import enrollment_workflow_id
from tests.integration.enrollment.conftest import Service
from tests.integration.enrollment.helpers import criteria, revision, update
from tests.integration.enrollment.test_rpcs import LEAD, activate

pytestmark = pytest.mark.temporal


def enrolled_in(wf: str, condition: str = "HAS_BEEN_ENROLLED") -> dict[str, Any]:
    return {
        "criteria": {
            "filter": {
                "enrollment_filters": [
                    {"workflow_id": wf, "condition": f"ENROLLMENT_CONDITION_{condition}"}
                ]
            }
        }
    }


def to_lead(tenant: str, rid: str) -> Any:
    return update(
        tenant, rid, {"lifecyclestage": ("subscriber", "lead")}, snapshot={"lifecyclestage": "lead"}
    )


async def test_enrollment_in_a_starts_b(service: Service, tenant_id: str) -> None:
    await service.records.create(tenant_id, "contact", {"lifecyclestage": "lead"}, record_id="c1")
    await service.records.create(tenant_id, "contact", {"lifecyclestage": "lead"}, record_id="c2")
    await activate(service, tenant_id, "a", {"triggers": [criteria(LEAD)]})
    await activate(service, tenant_id, "b", {"triggers": [enrolled_in("a")]})
    await activate(
        service, tenant_id, "c", {"triggers": [enrolled_in("a", "IS_NOT_CURRENTLY_ENROLLED")]}
    )
    res = await service.stub.IngestEvents(
        pb.IngestEventsRequest(tenant_id=tenant_id, events=[to_lead(tenant_id, "c1")])
    )
    assert [(o.workflow_id, o.outcome) for o in res.results[0].outcomes] == [
        ("a", "enrolled"),
        ("b", "enrolled"),
    ]
    client = service.env.client
    run_b = enrollment_workflow_id(tenant_id, "b", "contact", "c1", 1)
    desc = await client.get_workflow_handle(run_b).describe()
    assert desc.status is not None and desc.workflow_type == "EnrolledRecord"

    # which workflows has c1 been enrolled in?
    listed = await service.stub.ListRecordEnrollments(
        pb.ListRecordEnrollmentsRequest(tenant_id=tenant_id, object_type="contact", record_id="c1")
    )
    assert [
        (e.workflow_id, e.times_enrolled, e.currently_enrolled) for e in listed.enrollments
    ] == [
        ("a", 1, True),
        ("b", 1, True),
    ]
    assert listed.enrollments[0].current_run_workflow_id == enrollment_workflow_id(
        tenant_id, "a", "contact", "c1", 1
    )
    only_b = await service.stub.ListRecordEnrollments(
        pb.ListRecordEnrollmentsRequest(
            tenant_id=tenant_id, object_type="contact", record_id="c1", workflow_ids=["b"]
        )
    )
    assert [e.workflow_id for e in only_b.enrollments] == ["b"]
    # b's run ends by itself (terminated here): the answer follows Temporal, not the ledger
    await client.get_workflow_handle(run_b).terminate("done")
    only_b = await service.stub.ListRecordEnrollments(
        pb.ListRecordEnrollmentsRequest(
            tenant_id=tenant_id, object_type="contact", record_id="c1", workflow_ids=["b"]
        )
    )
    assert [(e.times_enrolled, e.currently_enrolled) for e in only_b.enrollments] == [(1, False)]

    # Explain shows the fact it read
    why = await service.stub.ExplainEnrollment(
        pb.ExplainEnrollmentRequest(tenant_id=tenant_id, workflow_id="b", record_id="c2")
    )
    assert (why.would_enroll, why.reason) == (False, "not_matching")
    t = why.triggers[0].trace[0]
    assert (t.path, t.property, t.matched) == (
        "enrollment.triggers[0].criteria.filter.enrollment_filters[0]",
        "@enrollment:a",
        False,
    )
    why = await service.stub.ExplainEnrollment(
        pb.ExplainEnrollmentRequest(tenant_id=tenant_id, workflow_id="c", record_id="c1")
    )
    assert why.triggers[0].trace[0].seen.string_value == "current"

    # unenrolling c1 from a by hand: "is not currently enrolled in a" -> c enrolls
    res2 = await service.stub.Unenroll(
        pb.UnenrollRequest(tenant_id=tenant_id, workflow_id="a", record_ids=["c1"])
    )
    assert [(o.workflow_id, o.outcome) for o in res2.outcomes] == [
        ("a", "unenrolled"),
        ("c", "enrolled"),
    ]
    # manual enrollment cascades too
    res3 = await service.stub.EnrollManually(
        pb.EnrollManuallyRequest(tenant_id=tenant_id, workflow_id="a", record_ids=["c2"])
    )
    assert [(o.workflow_id, o.outcome) for o in res3.outcomes] == [
        ("a", "enrolled"),
        ("b", "enrolled"),
    ]


async def test_estimate_and_bad_input(service: Service, tenant_id: str) -> None:
    for rid in ("c1", "c2", "c3"):
        await service.records.create(
            tenant_id, "contact", {"lifecyclestage": "lead"}, record_id=rid
        )
    await activate(service, tenant_id, "a", {"triggers": []})
    await service.stub.EnrollManually(
        pb.EnrollManuallyRequest(tenant_id=tenant_id, workflow_id="a", record_ids=["c2"])
    )
    d = WorkflowDefinition.model_validate(
        {"object_type": "contact", "enrollment": {"triggers": [enrolled_in("a")]}}
    )
    est = await service.stub.EstimateEnrollment(
        pb.EstimateEnrollmentRequest(
            tenant_id=tenant_id, definition=to_proto(d, workflow_pb2.WorkflowDefinition)
        )
    )
    assert (est.count, list(est.sample_record_ids)) == (1, ["c2"])
    never = WorkflowDefinition.model_validate(
        {
            "object_type": "contact",
            "enrollment": {"triggers": [enrolled_in("a", "HAS_NOT_BEEN_ENROLLED")]},
        }
    )
    est = await service.stub.EstimateEnrollment(
        pb.EstimateEnrollmentRequest(
            tenant_id=tenant_id, definition=to_proto(never, workflow_pb2.WorkflowDefinition)
        )
    )
    assert sorted(est.sample_record_ids) == ["c1", "c3"] and est.count == 2

    # a client cannot send the virtual property
    res = await service.stub.IngestEvents(
        pb.IngestEventsRequest(
            tenant_id=tenant_id,
            events=[update(tenant_id, "c1", {"@enrollment:a": (None, "current")})],
        )
    )
    r = res.results[0]
    assert (r.error_code, r.error_field) == ("INVALID_ARGUMENT", "events[0].changes[0].property")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await service.stub.ListRecordEnrollments(
            pb.ListRecordEnrollmentsRequest(tenant_id=tenant_id, object_type="contact")
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(bad_request_fields(err.value)) == ["record_id"]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await service.stub.ListRecordEnrollments(
            pb.ListRecordEnrollmentsRequest(
                tenant_id=tenant_id, object_type="contact", record_id="nobody"
            )
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    # a revision whose filter names no condition is refused naming the field
    proto_rev = revision(tenant_id, "b", {"triggers": [enrolled_in("a")]})
    proto_rev.definition.enrollment.triggers[0].criteria.filter.enrollment_filters[0].condition = 0
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await service.stub.ActivateRevision(
            pb.ActivateRevisionRequest(tenant_id=tenant_id, revision=proto_rev)
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert any(f.endswith("enrollment_filters.0.condition") for f in bad_request_fields(err.value))


async def test_a_run_ending_by_itself_leaves_is_currently_enrolled(
    service: Service, tenant_id: str
) -> None:
    from tests.helpers import eventually

    await service.records.create(tenant_id, "contact", {"lifecyclestage": "lead"}, record_id="c1")
    await activate(service, tenant_id, "a", {"triggers": [criteria(LEAD)]})
    await activate(
        service, tenant_id, "b", {"triggers": [enrolled_in("a", "IS_NOT_CURRENTLY_ENROLLED")]}
    )
    res = await service.stub.IngestEvents(
        pb.IngestEventsRequest(tenant_id=tenant_id, events=[to_lead(tenant_id, "c1")])
    )
    assert [(o.workflow_id, o.outcome) for o in res.results[0].outcomes] == [("a", "enrolled")]
    client = service.env.client
    # a's run finishes on its own (no unenrollment through the service)
    await client.get_workflow_handle(
        enrollment_workflow_id(tenant_id, "a", "contact", "c1", 1)
    ).terminate("finished")
    run_b = enrollment_workflow_id(tenant_id, "b", "contact", "c1", 1)

    async def b_started() -> bool:
        try:
            await client.get_workflow_handle(run_b).describe()
            return True
        except Exception:
            return False

    # the recovery loop's visibility sweep (every 15 s) notices the closed run
    await eventually(b_started, timeout=40)
