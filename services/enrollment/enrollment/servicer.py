"""gRPC EnrollmentService: proto at the edge, pydantic and the enrollment core inside.

User mistakes are raised as ``crmflow.errors`` (the interceptor maps them). In an ingest batch a
bad item does not fail the call: it is reported in its own result (error, error_code,
error_field) and enrolls nothing, while the other items are processed.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import grpc
from pydantic import ValidationError

from crmflow.api.enrollment.v1 import enrollment_service_pb2 as pb
from crmflow.api.enrollment.v1 import enrollment_service_pb2_grpc as pb_grpc
from crmflow.errors import CrmflowError, InvalidArgument, NotFound
from crmflow.grpc.errors import from_validation_error, to_status
from crmflow.grpc.server import ServiceBinding
from crmflow.model.convert import from_proto, message_to_dict
from crmflow.model.enrollment import UnenrollReason
from crmflow.model.records import ChangeEvent
from crmflow.model.workflow import PublishedRevision
from enrollment.enroller import Enroller, Outcome, aware
from enrollment.ingest import Ingestor
from enrollment.workflows import ActiveWorkflows

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]+$")
MAX_BATCH = 1000
# Records of one ingest batch processed at once (each holds a Temporal start in flight).
BATCH_CONCURRENCY = 16


def require_id(value: str, field: str) -> str:
    if not value:
        raise InvalidArgument.field(field, "is required")
    if not _SAFE_ID.match(value) or len(value) > 128:
        raise InvalidArgument.field(field, "letters, digits, '.', '_', ':' and '-' only (max 128)")
    return value


def outcome_pb(o: Outcome) -> pb.EnrollmentOutcome:
    return pb.EnrollmentOutcome(
        workflow_id=o.workflow_id,
        record_id=o.record_id,
        outcome=o.outcome,
        enrollment_number=o.enrollment_number,
        run_workflow_id=o.run_workflow_id,
        detail=o.detail,
    )


def parse_event(msg: Any, tenant_id: str, path: str) -> ChangeEvent:
    """Proto -> ChangeEvent, or InvalidArgument naming ``path.<field>``."""
    if not msg.event_id:
        raise InvalidArgument.field(
            f"{path}.event_id", "is required (it makes redelivery harmless)"
        )
    if len(msg.event_id) > 200:
        raise InvalidArgument.field(f"{path}.event_id", "at most 200 characters")
    if msg.tenant_id and msg.tenant_id != tenant_id:
        raise InvalidArgument.field(f"{path}.tenant_id", "differs from the request's tenant_id")
    if not msg.event_type:
        raise InvalidArgument.field(f"{path}.event_type", "is required")
    require_id(msg.object_type, f"{path}.object_type")
    require_id(msg.record_id, f"{path}.record_id")
    if not msg.HasField("occurred_at"):
        raise InvalidArgument.field(f"{path}.occurred_at", "is required")
    data = message_to_dict(msg)
    data["tenant_id"] = tenant_id
    try:
        return ChangeEvent.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error(exc, path) from None


_CODE_NAMES = {c.value[0]: c.name for c in grpc.StatusCode}


class EnrollmentServicer(pb_grpc.EnrollmentServiceServicer):
    def __init__(
        self,
        *,
        workflows: ActiveWorkflows,
        enroller: Enroller,
        ingestor: Ingestor,
        clock: Callable[[], datetime],
        extras: Any = None,
    ) -> None:
        self.workflows = workflows
        self.enroller = enroller
        self.ingestor = ingestor
        self.clock = clock
        self.extras = extras  # review/explain/backfill (enrollment.review)

    # Activation ------------------------------------------------------------------------
    async def ActivateRevision(self, request: Any, context: Any) -> pb.ActivateRevisionResponse:
        tenant = require_id(request.tenant_id, "tenant_id")
        if not request.HasField("revision"):
            raise InvalidArgument.field("revision", "is required")
        rev = from_proto(request.revision, PublishedRevision, field="revision")
        if rev.tenant_id and rev.tenant_id != tenant:
            raise InvalidArgument.field(
                "revision.tenant_id", "differs from the request's tenant_id"
            )
        require_id(rev.workflow_id, "revision.workflow_id")
        require_id(rev.definition.object_type, "revision.definition.object_type")
        backfill, schedules = await self.workflows.activate(
            rev, enroll_existing=request.enroll_existing, now=self.clock()
        )
        return pb.ActivateRevisionResponse(backfill_workflow_id=backfill, schedule_ids=schedules)

    async def DeactivateWorkflow(self, request: Any, context: Any) -> pb.DeactivateWorkflowResponse:
        tenant = require_id(request.tenant_id, "tenant_id")
        wf = require_id(request.workflow_id, "workflow_id")
        n = await self.workflows.deactivate(
            tenant, wf, unenroll_existing=request.unenroll_existing, now=self.clock()
        )
        return pb.DeactivateWorkflowResponse(unenrolled=n)

    # Ingest ---------------------------------------------------------------------------
    async def _ingest_one(self, tenant: str, msg: Any, path: str) -> pb.IngestResult:
        res = pb.IngestResult(event_id=msg.event_id)
        try:
            ev = parse_event(msg, tenant, path)
            await self.ingestor.check_types(ev, path)
            dup, outcomes = await self.ingestor.ingest(ev)
            res.duplicate = dup
            res.outcomes.extend(outcome_pb(o) for o in outcomes)
        except CrmflowError as exc:
            res.error = exc.message
            res.error_code = _CODE_NAMES.get(to_status(exc).code, "UNKNOWN")
            if isinstance(exc, InvalidArgument) and exc.violations:
                res.error_field = exc.violations[0].field
        return res

    async def _ingest_all(
        self, tenant: str, events: list[tuple[Any, str]]
    ) -> list[pb.IngestResult]:
        """The batch's results in its order. Records are processed concurrently (their
        workflow starts overlap instead of queueing one Temporal round trip behind another);
        the events of one record in batch order, one at a time: per record, order is the
        meaning of a change stream. A batch repeating an event id runs in order, as a whole,
        so the copy is seen as the duplicate it is."""
        results: list[pb.IngestResult | None] = [None] * len(events)
        lanes: list[list[int]]
        if len({msg.event_id for msg, _ in events}) < len(events):
            lanes = [list(range(len(events)))]
        else:
            for_record: dict[tuple[str, str], list[int]] = {}
            for i, (msg, _) in enumerate(events):
                for_record.setdefault((msg.object_type, msg.record_id), []).append(i)
            lanes = list(for_record.values())
        gate = asyncio.Semaphore(BATCH_CONCURRENCY)

        async def run(lane: list[int]) -> None:
            async with gate:
                for i in lane:
                    msg, path = events[i]
                    results[i] = await self._ingest_one(tenant, msg, path)

        if len(lanes) == 1:
            await run(lanes[0])
        else:
            await asyncio.gather(*(run(lane) for lane in lanes))
        return [r for r in results if r is not None]

    async def IngestEvents(self, request: Any, context: Any) -> pb.IngestEventsResponse:
        tenant = require_id(request.tenant_id, "tenant_id")
        if len(request.events) > MAX_BATCH:
            raise InvalidArgument.field("events", f"at most {MAX_BATCH} events per call")
        items = [(m, f"events[{i}]") for i, m in enumerate(request.events)]
        return pb.IngestEventsResponse(results=await self._ingest_all(tenant, items))

    async def IngestEventStream(
        self, request_iterator: AsyncIterator[Any], context: Any
    ) -> pb.IngestEventStreamResponse:
        results: list[pb.IngestResult] = []
        i = 0
        async for req in request_iterator:
            tenant = require_id(req.tenant_id, "tenant_id")
            items = []
            for m in req.events:
                items.append((m, f"events[{i}]"))
                i += 1
            results += await self._ingest_all(tenant, items)
        return pb.IngestEventStreamResponse(results=results)

    # Manual ---------------------------------------------------------------------------
    async def EnrollManually(self, request: Any, context: Any) -> pb.EnrollManuallyResponse:
        tenant = require_id(request.tenant_id, "tenant_id")
        cw = self.workflows.get(tenant, require_id(request.workflow_id, "workflow_id"))
        ids = [require_id(r, f"record_ids[{i}]") for i, r in enumerate(request.record_ids)]
        if not ids:
            raise InvalidArgument.field("record_ids", "name at least one record")
        records: dict[str, dict[str, Any]] = {}
        store = self.enroller.records
        if store is not None:
            found = await store.batch_get(tenant, cw.object_type, ids)
            records = {r.record_id: dict(r.properties) for r in found}
            missing = [r for r in ids if r not in records]
            if missing:
                raise NotFound(
                    cw.object_type,
                    missing[0],
                    f"{cw.object_type} record(s) not found: {', '.join(missing)}",
                )
        records = await self.enroller.enrich(cw, records)  # goal: "has been enrolled in"
        outcomes: list[Outcome] = []
        cascaded: list[Outcome] = []  # workflows triggered by these enrollments
        for rid in ids:
            outcomes.append(
                await self.enroller.enroll(
                    cw,
                    rid,
                    trigger="manual",
                    record=records.get(rid),
                    reenroll_ok=bool(request.allow_reenrollment)
                    or cw.definition.enrollment.reenrollment.enabled,
                    follow=cascaded,
                )
            )
        return pb.EnrollManuallyResponse(outcomes=[outcome_pb(o) for o in outcomes + cascaded])

    async def Unenroll(self, request: Any, context: Any) -> pb.UnenrollResponse:
        tenant = require_id(request.tenant_id, "tenant_id")
        cw = self.workflows.get(tenant, require_id(request.workflow_id, "workflow_id"))
        ids = [require_id(r, f"record_ids[{i}]") for i, r in enumerate(request.record_ids)]
        if not ids:
            raise InvalidArgument.field("record_ids", "name at least one record")
        cascaded: list[Outcome] = []
        outcomes = [
            await self.enroller.unenroll(
                tenant,
                cw.workflow_id,
                cw.object_type,
                rid,
                UnenrollReason.MANUAL,
                request.reason,
                follow=cascaded,
            )
            for rid in ids
        ]
        return pb.UnenrollResponse(outcomes=[outcome_pb(o) for o in outcomes + cascaded])

    # Review, explain, backfill (enrollment.review) -----------------------------------------
    async def EstimateEnrollment(self, request: Any, context: Any) -> Any:
        return await self._extra("estimate", request)

    async def SaveEstimateAsList(self, request: Any, context: Any) -> Any:
        return await self._extra("save_as_list", request)

    async def ExplainEnrollment(self, request: Any, context: Any) -> Any:
        return await self._extra("explain", request)

    async def GetBackfillProgress(self, request: Any, context: Any) -> Any:
        return await self._extra("backfill_progress", request)

    async def ListRecordEnrollments(
        self, request: Any, context: Any
    ) -> pb.ListRecordEnrollmentsResponse:
        """The ledger's enrollment facts of one record (what "has been enrolled in" reads)."""
        tenant = require_id(request.tenant_id, "tenant_id")
        object_type = require_id(request.object_type, "object_type")
        rid = require_id(request.record_id, "record_id")
        wanted = [require_id(w, f"workflow_ids[{i}]") for i, w in enumerate(request.workflow_ids)]
        facts, active = await self.enroller.ledger.record_facts(
            tenant_id=tenant, object_type=object_type, record_ids=[rid], workflow_ids=wanted
        )
        store = self.enroller.records
        if not facts[rid] and store is not None:
            await store.get(tenant, object_type, rid)  # NOT_FOUND for an unknown record
        # a run that ended by itself is still "running" in the ledger until someone asks
        # Temporal (lazy reconciliation, as the rules do): this answer should be right
        current = {r.workflow_id: r for r in active[rid] if await self.enroller.is_current(r)}
        out = pb.ListRecordEnrollmentsResponse()
        for f in facts[rid]:
            e = out.enrollments.add(
                workflow_id=f.workflow_id,
                times_enrolled=f.enrollment_count,
                currently_enrolled=f.workflow_id in current,
            )
            if f.workflow_id in current:
                e.current_run_workflow_id = current[f.workflow_id].run_workflow_id
            e.first_enrolled_at.FromDatetime(aware(f.first_enrolled_at))
            e.last_enrolled_at.FromDatetime(aware(f.last_enrolled_at))
        return out

    async def _extra(self, name: str, request: Any) -> Any:
        if self.extras is None:
            from crmflow.errors import FailedPrecondition

            raise FailedPrecondition(f"{name} needs the CRM store, which is not configured")
        return await getattr(self.extras, name)(request)


def binding(servicer: EnrollmentServicer) -> ServiceBinding:
    return ServiceBinding(
        full_name=pb.DESCRIPTOR.services_by_name["EnrollmentService"].full_name,
        add=lambda server: pb_grpc.add_EnrollmentServiceServicer_to_server(servicer, server),
    )
