"""ExecutorService: enrollments of a workflow, one enrollment's timeline, in-app notifications."""

from __future__ import annotations

import base64

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from crmflow.api.executor.v1 import executor_service_pb2 as pb
from crmflow.api.executor.v1 import executor_service_pb2_grpc as pb_grpc
from crmflow.errors import ErrorList, InvalidArgument, NotFound
from crmflow.grpc.server import ServiceBinding
from executor.history import History, utc

SERVICE_NAME = "crmflow.api.executor.v1.ExecutorService"
STATUSES = ("", "running", "completed", "unenrolled", "failed")
MAX_PAGE = 500


def _ts(value):  # type: ignore[no-untyped-def]
    ts = Timestamp()
    if value is not None:
        ts.FromDatetime(utc(value))
    return ts


def _offset(token: str) -> int:
    if not token:
        return 0
    try:
        return int(base64.urlsafe_b64decode(token.encode()).decode().removeprefix("o:"))
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument.field("page_token", "not a page token from this rpc") from None


def _token(offset: int | None) -> str:
    return "" if offset is None else base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def _page_size(size: int) -> int:
    if size < 0:
        raise InvalidArgument.field("page_size", "must not be negative")
    return min(size or 50, MAX_PAGE)


class ExecutorServicer(pb_grpc.ExecutorServiceServicer):
    def __init__(self, history: History) -> None:
        self._history = history

    async def ListEnrollments(
        self, request: pb.ListEnrollmentsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListEnrollmentsResponse:
        errs = ErrorList()
        if not request.tenant_id:
            errs.add("tenant_id", "required")
        if not request.workflow_id:
            errs.add("workflow_id", "required")
        if request.status not in STATUSES:
            errs.add("status", f"one of {', '.join(s for s in STATUSES if s)}")
        errs.raise_if_any()
        page = await self._history.list_runs(
            tenant_id=request.tenant_id, workflow_id=request.workflow_id, status=request.status,
            record_id=getattr(request, "record_id", ""),
            offset=_offset(request.page_token), limit=_page_size(request.page_size),
        )
        return pb.ListEnrollmentsResponse(
            enrollments=[
                pb.EnrollmentRun(
                    run_workflow_id=r.run_workflow_id, workflow_id=r.workflow_id,
                    record_id=r.record_id, revision=r.revision, status=r.status,
                    current_step=r.current_step, enrolled_at=_ts(r.enrolled_at),
                )
                for r in page.runs
            ],
            next_page_token=_token(page.next_offset),
        )


def binding(history: History) -> ServiceBinding:
    servicer = ExecutorServicer(history)

    def add(server: grpc.aio.Server) -> None:
        pb_grpc.add_ExecutorServiceServicer_to_server(servicer, server)

    return ServiceBinding(SERVICE_NAME, add)


__all__ = ["SERVICE_NAME", "ExecutorServicer", "NotFound", "binding"]
