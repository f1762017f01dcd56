"""Review support and introspection rpcs: estimate, save as list, explain, backfill progress.

Estimates ask the CRM port (count + a sample) for the criteria triggers of a definition that is
not necessarily published. Explain runs the same pure evaluator that decides enrollment, with
its trace, plus the ledger, suppression and goal checks, so "why (not)?" has one answer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.protobuf import struct_pb2
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from crmflow.api.enrollment.v1 import enrollment_service_pb2 as pb
from crmflow.criteria import compile_group, evaluate
from crmflow.criteria.evaluate import FilterTrace
from crmflow.errors import FailedPrecondition, InvalidArgument, NotFound
from crmflow.model.convert import from_proto
from crmflow.model.criteria import FilterGroup
from crmflow.model.workflow import WorkflowDefinition
from crmflow.records.port import RecordStore
from crmflow.temporal.ids import backfill_workflow_id
from enrollment.activities import backfill_criteria
from enrollment.compiled import compile_revision
from enrollment.enroller import Enroller, aware
from enrollment.payloads import BackfillProgress
from enrollment.servicer import require_id
from enrollment.workflows import ActiveWorkflows

MAX_SAMPLE = 100


def _value(v: Any) -> struct_pb2.Value:
    out = struct_pb2.Value()
    if v is None:
        out.null_value = struct_pb2.NULL_VALUE
    elif isinstance(v, bool):
        out.bool_value = v
    elif isinstance(v, int | float):
        out.number_value = float(v)
    elif isinstance(v, list | tuple):
        out.list_value.values.extend(_value(x) for x in v)
    else:
        out.string_value = str(v)
    return out


def trace_pb(t: FilterTrace) -> pb.FilterTrace:
    return pb.FilterTrace(
        path=t.path,
        property=t.property,
        operator=t.operator,
        operand=_value(t.operand),
        seen=_value(t.seen),
        matched=t.matched,
    )


class Review:
    def __init__(
        self,
        *,
        workflows: ActiveWorkflows,
        enroller: Enroller,
        records: RecordStore | None,
        client: Client,
    ) -> None:
        self.workflows = workflows
        self.enroller = enroller
        self.records = records
        self.client = client

    def _store(self) -> RecordStore:
        if self.records is None:
            raise FailedPrecondition("the CRM store is not configured for the enrollment service")
        return self.records

    def _definition(self, request: Any) -> WorkflowDefinition:
        if not request.HasField("definition"):
            raise InvalidArgument.field("definition", "is required")
        d = from_proto(request.definition, WorkflowDefinition, field="definition")
        require_id(d.object_type, "definition.object_type")
        return d

    def _criteria(self, tenant: str, d: WorkflowDefinition) -> Any:
        from crmflow.model.workflow import PublishedRevision

        rev = PublishedRevision(
            tenant_id=tenant,
            workflow_id=d.workflow_id or "estimate",
            revision=1,
            published_at=self.enroller.clock(),
            definition=d,
        )
        cw = compile_revision(rev)  # InvalidArgument naming a bad filter (as "revision....")
        return backfill_criteria(cw)

    async def estimate(self, request: Any) -> pb.EstimateEnrollmentResponse:
        tenant = require_id(request.tenant_id, "tenant_id")
        d = self._definition(request)
        if request.sample_size < 0:
            raise InvalidArgument.field("sample_size", "must not be negative")
        size = min(request.sample_size or 10, MAX_SAMPLE)
        group = self._criteria(tenant, d)
        complete = all(t.criteria is not None for t in d.enrollment.triggers)
        if group is None:
            return pb.EstimateEnrollmentResponse(count=0, complete=False)
        store = self._store()
        if group.enrollment_workflows():
            ids = await self._matching_enrich(tenant, d.object_type, group)
            return pb.EstimateEnrollmentResponse(
                count=len(ids), sample_record_ids=ids[:size], complete=complete
            )
        count = await store.count(tenant, d.object_type, group)
        page = await store.search(tenant, d.object_type, group, limit=size)
        return pb.EstimateEnrollmentResponse(
            count=count, sample_record_ids=[r.record_id for r in page.records], complete=complete
        )

    async def _matching_enrich(
        self, tenant: str, object_type: str, group: FilterGroup
    ) -> list[str]:
        """Records matching criteria that read enrollment facts: the CRM searches without
        them (a superset), each page is confirmed with the facts from the ledger."""
        store = self._store()
        check = compile_group(group)
        now = self.enroller.clock()
        wide = group.without_enrollment_filters()
        out: list[str] = []
        cursor = ""
        while True:
            page = await store.search(tenant, object_type, wide, limit=500, cursor=cursor)
            facts = await self.enroller.ledger.fact_properties(
                tenant_id=tenant,
                object_type=object_type,
                record_ids=[r.record_id for r in page.records],
            )
            for r in page.records:
                if check({**r.properties, **facts[r.record_id]}, now, {}):
                    out.append(r.record_id)
            if not page.next_cursor:
                return out
            cursor = page.next_cursor

    async def save_as_list(self, request: Any) -> pb.SaveEstimateAsListResponse:
        tenant = require_id(request.tenant_id, "tenant_id")
        d = self._definition(request)
        if not request.list_name.strip():
            raise InvalidArgument.field("list_name", "is required")
        group = self._criteria(tenant, d)
        if group is None:
            raise FailedPrecondition("the definition has no criteria triggers to list records by")
        store = self._store()
        if group.enrollment_workflows():
            ids = await self._matching_enrich(tenant, d.object_type, group)
            lst = await store.create_list(tenant, request.list_name.strip(), d.object_type)
            for i in range(0, len(ids), 500):
                await store.add_to_list(tenant, lst.list_id, ids[i : i + 500])
            return pb.SaveEstimateAsListResponse(list_id=lst.list_id, count=len(ids))
        lst = await store.create_list(tenant, request.list_name.strip(), d.object_type)
        cursor, n = "", 0
        while True:
            page = await store.search(tenant, d.object_type, group, limit=500, cursor=cursor)
            ids = [r.record_id for r in page.records]
            if ids:
                await store.add_to_list(tenant, lst.list_id, ids)
                n += len(ids)
            if not page.next_cursor:
                break
            cursor = page.next_cursor
        return pb.SaveEstimateAsListResponse(list_id=lst.list_id, count=n)

    async def explain(self, request: Any) -> pb.ExplainEnrollmentResponse:
        tenant = require_id(request.tenant_id, "tenant_id")
        cw = self.workflows.get(tenant, require_id(request.workflow_id, "workflow_id"))
        rid = require_id(request.record_id, "record_id")
        store = self._store()
        rec = await store.get(tenant, cw.object_type, rid)  # NotFound for an unknown record
        # "has been enrolled in" filters read the ledger's facts (shown in the trace)
        props = (await self.enroller.enrich(cw, {rid: rec.properties}))[rid]
        now: datetime = self.enroller.clock()
        out = pb.ExplainEnrollmentResponse(workflow_on=cw.enabled)
        e = cw.definition.enrollment
        any_match = False
        for i, t in enumerate(e.triggers):
            te = pb.TriggerExplanation(index=i, kind=t.kind)
            if t.criteria is not None:
                r = evaluate(
                    t.criteria.filter,
                    props,
                    now=now,
                    path=f"enrollment.triggers[{i}].criteria.filter",
                )
                te.matched = r.matched
                te.trace.extend(trace_pb(x) for x in r.trace)
                te.note = "meets the criteria" if r.matched else "does not meet the criteria"
            elif t.event is not None:
                te.note = f"enrolls when {t.event.event_type.value} happens"
            elif t.schedule is not None:
                te.note = f"enrolls at the schedule's ticks ({t.schedule.frequency.value})"
            else:
                te.note = "enrolls only by hand"
            any_match |= te.matched
            out.triggers.append(te)
        fact = await self.enroller.ledger.fact(
            tenant_id=tenant, workflow_id=cw.workflow_id, object_type=cw.object_type, record_id=rid
        )
        current = await self.enroller.ledger.current(
            tenant_id=tenant, workflow_id=cw.workflow_id, object_type=cw.object_type, record_id=rid
        )
        out.currently_enrolled = current is not None and await self.enroller.is_current(current)
        out.times_enrolled = fact.enrollment_count if fact else 0
        if fact:
            out.last_enrolled_at.FromDatetime(aware(fact.last_enrolled_at))
        out.reenrollment_enabled = e.reenrollment.enabled
        out.suppressed_by_list_ids.extend(await self.enroller.suppressed_by(cw, rid))
        if e.goal is not None and not e.goal.is_empty():
            g = evaluate(e.goal, props, now=now, path="enrollment.goal")
            out.goal_met = g.matched
            out.goal_trace.extend(trace_pb(x) for x in g.trace)
        out.reason, out.would_enroll = self._verdict(out, any_match)
        return out

    @staticmethod
    def _verdict(out: pb.ExplainEnrollmentResponse, any_match: bool) -> tuple[str, bool]:
        if not out.workflow_on:
            return "workflow_off", False
        if out.currently_enrolled:
            return "already_enrolled", False
        if not any_match:
            return "not_matching", False
        if out.times_enrolled and not out.reenrollment_enabled:
            return "reenrollment_off", False
        if out.suppressed_by_list_ids:
            return "suppressed", False
        if out.goal_met:
            return "goal_met", False
        return "would_enroll", True

    async def backfill_progress(self, request: Any) -> pb.GetBackfillProgressResponse:
        tenant = require_id(request.tenant_id, "tenant_id")
        cw = self.workflows.get(tenant, require_id(request.workflow_id, "workflow_id"))
        rev = request.revision or cw.revision.revision
        wid = backfill_workflow_id(tenant, cw.workflow_id, rev)
        handle = self.client.get_workflow_handle(wid, result_type=BackfillProgress)
        try:
            desc = await handle.describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise NotFound("backfill", wid) from None
            raise
        status = desc.status
        if status == WorkflowExecutionStatus.COMPLETED:
            prog = await handle.result()
        elif status == WorkflowExecutionStatus.RUNNING:
            prog = await handle.query("progress", result_type=BackfillProgress)
        else:
            memo = await desc.memo_value("progress", default=None)
            prog = (
                BackfillProgress.model_validate(memo)
                if memo
                else BackfillProgress(tenant_id=tenant, workflow_id=cw.workflow_id, revision=rev)
            )
        return pb.GetBackfillProgressResponse(
            backfill_workflow_id=wid,
            status=status.name.lower() if status else "unknown",
            scanned=prog.scanned,
            enrolled=prog.enrolled,
            skipped=prog.skipped,
            pages=prog.pages,
            done=prog.done,
        )
