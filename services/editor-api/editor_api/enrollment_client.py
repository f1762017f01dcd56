"""editor-api's view of EnrollmentService: activate / deactivate, estimate, save as list.

The gRPC adapter converts pydantic <-> proto at this edge. Transport failures become
``EnrollmentUnavailable`` (the caller decides: publish keeps an outbox row and retries; the
read-only preview answers UNAVAILABLE). Domain errors from enrollment (a bad definition, say)
come back as the matching ``crmflow.errors`` type.
"""

from __future__ import annotations

from typing import Any, Protocol

import grpc

from crmflow.api.enrollment.v1 import enrollment_service_pb2 as pb
from crmflow.api.enrollment.v1 import enrollment_service_pb2_grpc as pb_grpc
from crmflow.api.workflow.v1 import workflow_pb2
from crmflow.errors import CrmflowError, FailedPrecondition
from crmflow.grpc.channel import open_channel
from crmflow.grpc.errors import from_rpc_error
from crmflow.model.convert import to_proto
from crmflow.model.workflow import PublishedRevision, WorkflowDefinition
from crmflow.settings import Settings

_RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.CANCELLED,
}


class EnrollmentUnavailable(Exception):
    """Enrollment could not be reached (or failed on its side); worth retrying later."""


class EnrollmentGateway(Protocol):
    async def activate(self, revision: PublishedRevision, *, enroll_existing: bool) -> None: ...

    async def deactivate(
        self, tenant_id: str, workflow_id: str, *, unenroll_existing: bool = False
    ) -> None: ...

    async def estimate(
        self, tenant_id: str, definition: WorkflowDefinition, sample_size: int
    ) -> tuple[int, list[str]]: ...

    async def save_as_list(
        self, tenant_id: str, definition: WorkflowDefinition, list_name: str
    ) -> str: ...

    async def close(self) -> None: ...


def _message(name: str) -> Any:
    cls = getattr(pb, name, None)
    if cls is None:  # the enrollment contract is older than this editor
        raise FailedPrecondition(f"the enrollment service contract has no {name}")
    return cls


class GrpcEnrollmentGateway:
    def __init__(self, address: str, settings: Settings | None = None, timeout: float = 10.0):
        self._channel = open_channel(address, settings)
        self._stub = pb_grpc.EnrollmentServiceStub(self._channel)
        self._timeout = timeout

    async def _call(self, method: str, request: Any) -> Any:
        fn = getattr(self._stub, method, None)
        if fn is None:
            raise FailedPrecondition(f"the enrollment service contract has no {method} rpc")
        try:
            return await fn(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as err:
            if err.code() in _RETRYABLE:
                raise EnrollmentUnavailable(
                    f"enrollment {method}: {err.code().name}: {err.details()}"
                ) from None
            domain = from_rpc_error(err)
            if isinstance(domain, CrmflowError):
                raise domain from None
            raise EnrollmentUnavailable(f"enrollment {method}: {err.code().name}") from None

    async def activate(self, revision: PublishedRevision, *, enroll_existing: bool) -> None:
        await self._call(
            "ActivateRevision",
            pb.ActivateRevisionRequest(
                tenant_id=revision.tenant_id,
                revision=to_proto(revision, workflow_pb2.PublishedRevision),
                enroll_existing=enroll_existing,
            ),
        )

    async def deactivate(
        self, tenant_id: str, workflow_id: str, *, unenroll_existing: bool = False
    ) -> None:
        req = _message("DeactivateWorkflowRequest")(
            tenant_id=tenant_id, workflow_id=workflow_id, unenroll_existing=unenroll_existing
        )
        await self._call("DeactivateWorkflow", req)

    async def estimate(
        self, tenant_id: str, definition: WorkflowDefinition, sample_size: int
    ) -> tuple[int, list[str]]:
        req = _message("EstimateEnrollmentRequest")(
            tenant_id=tenant_id,
            definition=to_proto(definition, workflow_pb2.WorkflowDefinition),
            sample_size=sample_size,
        )
        resp = await self._call("EstimateEnrollment", req)
        count = getattr(resp, "count", None)
        if count is None:
            count = getattr(resp, "estimated_count", 0)
        ids = list(getattr(resp, "sample_record_ids", None) or getattr(resp, "record_ids", []))
        return int(count or 0), ids

    async def save_as_list(
        self, tenant_id: str, definition: WorkflowDefinition, list_name: str
    ) -> str:
        req = _message("SaveEstimateAsListRequest")(
            tenant_id=tenant_id,
            definition=to_proto(definition, workflow_pb2.WorkflowDefinition),
            list_name=list_name,
        )
        resp = await self._call("SaveEstimateAsList", req)
        return str(resp.list_id)

    async def close(self) -> None:
        await self._channel.close()
