"""Enroll in another workflow / unenroll from others: the rpcs EnrollmentService receives.

A small real gRPC server stands in for the enrollment service (the subject here is the
executor's side of the contract: which rpc, which fields, what a refusal does).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from temporalio.testing import WorkflowEnvironment

from crmflow.api.enrollment.v1 import enrollment_service_pb2 as pb
from crmflow.api.enrollment.v1 import enrollment_service_pb2_grpc as pb_grpc
from crmflow.errors import NotFound
from crmflow.grpc.server import ServiceBinding, start_server
from tests.workflows.harness import act, definition, enrollment, make_settings, running_worker


class Enrollment(pb_grpc.EnrollmentServiceServicer):
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    async def EnrollManually(self, request: Any, context: Any) -> Any:
        if request.workflow_id == "missing":
            raise NotFound("workflow", request.workflow_id)
        self.calls.append(("EnrollManually", request))
        return pb.EnrollManuallyResponse()

    async def Unenroll(self, request: Any, context: Any) -> Any:
        self.calls.append(("Unenroll", request))
        return pb.UnenrollResponse()

    async def ListRecordEnrollments(self, request: Any, context: Any) -> Any:
        self.calls.append(("ListRecordEnrollments", request))
        facts = {"c1": {"wf-a": False}, "c2": {"wf-a": True, "wf-b": False}}.get(
            request.record_id, {}
        )
        return pb.ListRecordEnrollmentsResponse(
            enrollments=[
                pb.RecordEnrollment(workflow_id=w, times_enrolled=1, currently_enrolled=cur)
                for w, cur in sorted(facts.items())
                if not request.workflow_ids or w in request.workflow_ids
            ]
        )


@pytest.fixture
async def enrollment_service(tmp_path: Path) -> AsyncIterator[tuple[Enrollment, int]]:
    servicer = Enrollment()

    def add(server: grpc.aio.Server) -> None:
        pb_grpc.add_EnrollmentServiceServicer_to_server(servicer, server)

    running = await start_server(
        [ServiceBinding("crmflow.api.enrollment.v1.EnrollmentService", add)],
        settings=make_settings(tmp_path, "unused"),
    )
    try:
        yield servicer, running.port
    finally:
        await running.stop(0)


async def test_enroll_elsewhere_and_unenroll_from_others(
    temporal_env: WorkflowEnvironment,
    tmp_path: Path,
    task_queue: str,
    tenant_id: str,
    enrollment_service: tuple[Enrollment, int],
) -> None:
    servicer, port = enrollment_service
    settings = make_settings(tmp_path, task_queue, enrollment_address=f"127.0.0.1:{port}")
    actions = [
        act("enroll", "enroll_in_workflow", "missing", workflow_id="wf-onboarding"),
        act("missing", "enroll_in_workflow", "unenroll", workflow_id="missing"),
        act("unenroll", "unenroll_from_workflows", workflow_ids=["wf-nurture", "wf-1"]),
    ]
    async with running_worker(temporal_env.client, tmp_path, task_queue, settings=settings) as h:
        h.store.put(tenant_id, "contact", "c1")
        handle = await h.start(enrollment(tenant_id, "c1", definition(actions)))
        assert (await handle.result()).status == "completed"
        timeline = await h.history.timeline(tenant_id=tenant_id, run_workflow_id=handle.id)
        assert [(t.action_id, t.status, t.attempts) for t in timeline] == [
            ("enroll", "succeeded", 1),
            ("missing", "failed", 1),
            ("unenroll", "succeeded", 1),
        ]
    kinds = [(k, r.workflow_id, list(r.record_ids)) for k, r in servicer.calls]
    # The workflow never unenrolls the record from itself.
    assert kinds == [
        ("EnrollManually", "wf-onboarding", ["c1"]),
        ("Unenroll", "wf-nurture", ["c1"]),
    ]
    assert "wf-1" in servicer.calls[1][1].reason


@pytest.mark.parametrize(
    ("record_id", "segment"), [("c1", "was-in-a"), ("c2", "in-a-now"), ("c3", "never")]
)
async def test_if_then_branches_on_enrollment_in_other_workflows(
    temporal_env: WorkflowEnvironment,
    tmp_path: Path,
    task_queue: str,
    tenant_id: str,
    enrollment_service: tuple[Enrollment, int],
    record_id: str,
    segment: str,
) -> None:
    from crmflow.model.actions import Action, Connection
    from crmflow.model.criteria import FilterGroup
    from tests.workflows.harness import branch

    def cond(c: str) -> FilterGroup:
        return FilterGroup.model_validate(
            {"enrollment_filters": [{"workflow_id": "wf-a", "condition": c}]}
        )

    servicer, port = enrollment_service
    settings = make_settings(tmp_path, task_queue, enrollment_address=f"127.0.0.1:{port}")
    actions = [
        Action(
            action_id="b",
            action_type="if_then",
            branches=[
                branch(
                    "now", "set-now", criteria=cond("ENROLLMENT_CONDITION_IS_CURRENTLY_ENROLLED")
                ),
                branch("was", "set-was", criteria=cond("ENROLLMENT_CONDITION_HAS_BEEN_ENROLLED")),
            ],
            default_connection=Connection(next_action_id="set-never"),
        ),
        act("set-now", "set_property", property="segment", value="in-a-now"),
        act("set-was", "set_property", property="segment", value="was-in-a"),
        act("set-never", "set_property", property="segment", value="never"),
    ]
    async with running_worker(temporal_env.client, tmp_path, task_queue, settings=settings) as h:
        h.store.put(tenant_id, "contact", record_id)
        result = await h.run(enrollment(tenant_id, record_id, definition(actions)))
        assert result.status == "completed"
        got = (await h.store.get(tenant_id, "contact", record_id)).properties["segment"]
        assert got == segment
    asked = [r for k, r in servicer.calls if k == "ListRecordEnrollments"]
    assert [(r.record_id, list(r.workflow_ids)) for r in asked] == [(record_id, ["wf-a"])]
