"""ExecutorService: enrollments of a workflow, one enrollment's timeline, in-app notifications."""

from __future__ import annotations

import base64
import json

import grpc
from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp

from crmflow.api.executor.v1 import executor_service_pb2 as pb
from crmflow.api.executor.v1 import executor_service_pb2_grpc as pb_grpc
from crmflow.errors import ErrorList, InvalidArgument, NotFound
from crmflow.grpc.server import ServiceBinding
from executor.history import History, utc
from executor.tables import EnrollmentRun

SERVICE_NAME = "crmflow.api.executor.v1.ExecutorService"
STATUSES = ("", "running", "completed", "unenrolled", "failed")
MAX_PAGE = 500


def _ts(value):  # type: ignore[no-untyped-def]
    ts = Timestamp()
    dt = utc(value)
    if dt is not None:
        ts.FromDatetime(dt)
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
            tenant_id=request.tenant_id,
            workflow_id=request.workflow_id,
            status=request.status,
            record_id=request.record_id,
            offset=_offset(request.page_token),
            limit=_page_size(request.page_size),
        )
        return pb.ListEnrollmentsResponse(
            enrollments=[_run(r) for r in page.runs], next_page_token=_token(page.next_offset)
        )

    async def GetEnrollmentTimeline(
        self, request: pb.GetEnrollmentTimelineRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetEnrollmentTimelineResponse:
        errs = ErrorList()
        if not request.tenant_id:
            errs.add("tenant_id", "required")
        if not request.run_workflow_id:
            errs.add("run_workflow_id", "required")
        errs.raise_if_any()
        run = await self._history.get_run(
            tenant_id=request.tenant_id, run_workflow_id=request.run_workflow_id
        )
        if run is None:
            raise NotFound("enrollment", request.run_workflow_id)
        rows = await self._history.timeline(
            tenant_id=request.tenant_id, run_workflow_id=request.run_workflow_id
        )
        failures = await self._history.attempt_errors(keys=[r.idempotency_key for r in rows])
        by_key: dict[str, list[pb.FailedAttempt]] = {}
        for f in failures:
            by_key.setdefault(f.idempotency_key, []).append(
                pb.FailedAttempt(attempt=f.attempt, error=f.error, at=_ts(f.at))
            )
        entries = []
        for r in rows:
            outputs = Struct()
            outputs.update(json.loads(json.dumps(r.outputs or {}, default=str)))
            entries.append(
                pb.TimelineEntry(
                    action_id=r.action_id,
                    action_type=r.action_type,
                    visit=r.visit,
                    status=r.status,
                    reason=r.reason,
                    attempts=r.attempts,
                    started_at=_ts(r.started_at),
                    finished_at=_ts(r.finished_at),
                    outputs=outputs,
                    failed_attempts=by_key.get(r.idempotency_key, []),
                )
            )
        return pb.GetEnrollmentTimelineResponse(enrollment=_run(run), entries=entries)

    async def ListNotifications(
        self, request: pb.ListNotificationsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListNotificationsResponse:
        errs = ErrorList()
        if not request.tenant_id:
            errs.add("tenant_id", "required")
        if not request.user_id:
            errs.add("user_id", "required")
        errs.raise_if_any()
        rows, nxt = await self._history.list_notifications(
            tenant_id=request.tenant_id,
            user_id=request.user_id,
            offset=_offset(request.page_token),
            limit=_page_size(request.page_size),
        )
        return pb.ListNotificationsResponse(
            notifications=[
                pb.Notification(
                    notification_id=n.notification_id,
                    user_id=n.user_id,
                    title=n.title,
                    body=n.body,
                    link=n.link,
                    workflow_id=n.workflow_id,
                    object_type=n.object_type,
                    record_id=n.record_id,
                    created_at=_ts(n.created_at),
                )
                for n in rows
            ],
            next_page_token=_token(nxt),
        )


def _run(r: EnrollmentRun) -> pb.EnrollmentRun:
    return pb.EnrollmentRun(
        run_workflow_id=r.run_workflow_id,
        workflow_id=r.workflow_id,
        record_id=r.record_id,
        revision=r.revision,
        status=r.status,
        current_step=r.current_step,
        enrolled_at=_ts(r.enrolled_at),
        object_type=r.object_type,
        enrollment_number=r.enrollment_number,
        reason=r.reason,
        ended_at=_ts(r.ended_at) if r.ended_at else None,
    )


def binding(history: History) -> ServiceBinding:
    servicer = ExecutorServicer(history)

    def add(server: grpc.aio.Server) -> None:
        pb_grpc.add_ExecutorServiceServicer_to_server(servicer, server)

    return ServiceBinding(SERVICE_NAME, add)
