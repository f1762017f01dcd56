"""Flow actions: enroll in another workflow / unenroll from others, via EnrollmentService."""

from __future__ import annotations

from typing import Any

import grpc

from crmflow.actions import flow as spec
from crmflow.actions.flow import EnrollInWorkflowFields, UnenrollFromWorkflowsFields
from crmflow.api.enrollment.v1 import enrollment_service_pb2 as pb
from crmflow.api.enrollment.v1 import enrollment_service_pb2_grpc as pb_grpc
from crmflow.grpc.channel import open_channel
from crmflow.grpc.errors import from_rpc_error
from executor.activities.base import ActionContext, Deps, handles

_FINAL = (
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.PERMISSION_DENIED,
)


def enrollment_stub(deps: Deps) -> pb_grpc.EnrollmentServiceStub:
    """The EnrollmentService client, opened once per worker."""
    stub = deps.extras.get("enrollment_stub")
    if stub is None:
        channel = open_channel(deps.settings.enrollment_address, deps.settings)
        stub = pb_grpc.EnrollmentServiceStub(channel)
        deps.extras["enrollment_stub"] = stub
        deps.extras["enrollment_channel"] = channel
    return stub


def _stub(ctx: ActionContext) -> pb_grpc.EnrollmentServiceStub:
    return enrollment_stub(ctx.deps)


async def _call(coro: Any) -> Any:
    try:
        return await coro
    except grpc.aio.AioRpcError as err:
        if err.code() in _FINAL:
            raise (from_rpc_error(err) or err) from None  # a CrmflowError: not retried
        raise


@handles(spec.ENROLL_IN_WORKFLOW)
async def enroll_in_workflow(ctx: ActionContext, f: EnrollInWorkflowFields) -> dict[str, Any]:
    r = ctx.req
    if f.workflow_id == r.workflow_id:
        from crmflow.errors import InvalidArgument

        raise InvalidArgument.field("fields.workflow_id", "a workflow cannot enroll into itself")
    resp = await _call(
        _stub(ctx).EnrollManually(
            pb.EnrollManuallyRequest(
                tenant_id=r.tenant_id,
                workflow_id=f.workflow_id,
                record_ids=[r.record_id],
                allow_reenrollment=f.allow_reenrollment,
            ),
            timeout=30,
        )
    )
    return {"workflow_id": f.workflow_id, "response": str(resp).strip()[:200]}


@handles(spec.UNENROLL_FROM_WORKFLOWS)
async def unenroll_from_workflows(
    ctx: ActionContext, f: UnenrollFromWorkflowsFields
) -> dict[str, Any]:
    r = ctx.req
    reason = f.reason or f"unenrolled by workflow {r.workflow_id} ({r.action_id})"
    for wf in f.workflow_ids:
        if wf == r.workflow_id:
            continue
        await _call(
            _stub(ctx).Unenroll(
                pb.UnenrollRequest(
                    tenant_id=r.tenant_id,
                    workflow_id=wf,
                    record_ids=[r.record_id],
                    reason=reason,
                ),
                timeout=30,
            )
        )
    return {"workflows": len(f.workflow_ids)}
