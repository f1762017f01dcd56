"""Map domain errors to gRPC status codes with ``google.rpc`` details.

One table, used by the server interceptor, so every service answers a user's mistake with the
same code and detail shape: INVALID_ARGUMENT + BadRequest naming fields, NOT_FOUND +
ResourceInfo, FAILED_PRECONDITION + PreconditionFailure, ABORTED on conflicting edits.
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from pydantic import ValidationError

from crmflow import errors as e

_CODES: list[tuple[type[e.CrmflowError], grpc.StatusCode]] = [
    (e.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (e.NotFound, grpc.StatusCode.NOT_FOUND),
    (e.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (e.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (e.Aborted, grpc.StatusCode.ABORTED),
    (e.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (e.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (e.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
]


def pydantic_violations(exc: ValidationError, prefix: str = "") -> list[e.FieldViolation]:
    out = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"])
        if prefix:
            path = f"{prefix}.{path}" if path else prefix
        out.append(e.FieldViolation(path or "(request)", err["msg"]))
    return out


def from_validation_error(exc: ValidationError, prefix: str = "") -> e.InvalidArgument:
    violations = pydantic_violations(exc, prefix)
    first = violations[0]
    return e.InvalidArgument(f"{first.field}: {first.description}", violations)


def to_status(exc: e.CrmflowError) -> status_pb2.Status:
    code = next(c for cls, c in _CODES if isinstance(exc, cls))
    detail = any_pb2.Any()
    packed = False
    if isinstance(exc, e.InvalidArgument) and exc.violations:
        detail.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description
                    )
                    for v in exc.violations
                ]
            )
        )
        packed = True
    elif isinstance(exc, e.NotFound):
        detail.Pack(
            error_details_pb2.ResourceInfo(
                resource_type=exc.resource_type,
                resource_name=exc.resource_name,
                description=exc.message,
            )
        )
        packed = True
    elif isinstance(exc, e.FailedPrecondition) and exc.violations:
        detail.Pack(
            error_details_pb2.PreconditionFailure(
                violations=[
                    error_details_pb2.PreconditionFailure.Violation(
                        type=v.type, subject=v.subject, description=v.description
                    )
                    for v in exc.violations
                ]
            )
        )
        packed = True
    return status_pb2.Status(
        code=getattr(code_pb2, code.name),
        message=exc.message,
        details=[detail] if packed else [],
    )


async def abort(context: grpc.aio.ServicerContext, exc: e.CrmflowError) -> None:
    status = rpc_status.to_status(to_status(exc))
    await context.abort(status.code, status.details, status.trailing_metadata)


def status_from_rpc_error(err: grpc.aio.AioRpcError) -> status_pb2.Status | None:
    """Client side: the rich status carried in trailers, if any."""
    return rpc_status.from_call(err)  # type: ignore[arg-type]


def bad_request_fields(err: grpc.aio.AioRpcError) -> dict[str, str]:
    """Client side helper: ``{field: description}`` from a BadRequest detail."""
    status = status_from_rpc_error(err)
    out: dict[str, str] = {}
    if status is None:
        return out
    for d in status.details:
        if d.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            br = error_details_pb2.BadRequest()
            d.Unpack(br)
            out.update({v.field: v.description for v in br.field_violations})
    return out


def from_rpc_error(err: grpc.aio.AioRpcError) -> e.CrmflowError | None:
    """Client side: rebuild the domain error so adapters over gRPC raise what local code raises."""
    code = err.code()
    msg = err.details() or ""
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return e.InvalidArgument(
            msg, [e.FieldViolation(f, d) for f, d in bad_request_fields(err).items()]
        )
    if code == grpc.StatusCode.NOT_FOUND:
        return e.NotFound("resource", "", msg)
    for cls, c in _CODES:
        if c == code and cls not in (e.InvalidArgument, e.NotFound):
            return cls(msg)
    return None
