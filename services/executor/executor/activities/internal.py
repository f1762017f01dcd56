"""Internal activities the workflow runs as local activities: reads and run-history writes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from temporalio import activity

from crmflow.errors import NotFound
from crmflow.records.port import RecordStore
from crmflow.settings import Settings
from executor import dispatch
from executor.activities.base import Deps
from executor.payloads import (
    FetchRecordRequest,
    FetchRecordResult,
    ResolveValueRequest,
    ResolveValueResult,
    RunProgress,
)

EnrollmentFacts = Callable[[FetchRecordRequest], Awaitable[dict[str, str]]]


def enrollment_facts(deps: Deps) -> EnrollmentFacts:
    """``@enrollment:<workflow>`` -> "current" | "past" of the record, from the enrollment
    service's ledger (the same virtual properties its triggers read)."""

    async def read(req: FetchRecordRequest) -> dict[str, str]:
        from crmflow.api.enrollment.v1 import enrollment_service_pb2 as pb
        from crmflow.model.criteria import CURRENT, PAST, enrollment_property
        from executor.activities.flow import enrollment_stub

        res = await enrollment_stub(deps).ListRecordEnrollments(
            pb.ListRecordEnrollmentsRequest(
                tenant_id=req.tenant_id,
                object_type=req.object_type,
                record_id=req.record_id,
                workflow_ids=req.enrollment_workflows,
            )
        )
        return {
            enrollment_property(e.workflow_id): CURRENT if e.currently_enrolled else PAST
            for e in res.enrollments
        }

    return read


async def fetch_record(
    store: RecordStore, req: FetchRecordRequest, facts: EnrollmentFacts | None = None
) -> FetchRecordResult:
    try:
        rec = await store.get(req.tenant_id, req.object_type, req.record_id)
    except NotFound:
        return FetchRecordResult(found=False)
    associated: dict[str, list[dict[str, Any]]] = {}
    for ref in req.associations:
        links = await store.list_associations(
            req.tenant_id, req.object_type, req.record_id, ref.object_type, label=ref.label
        )
        others = await store.batch_get(
            req.tenant_id, ref.object_type, [a.to_record_id for a in links]
        )
        key = f"{ref.object_type}:{ref.label}" if ref.label else ref.object_type
        associated[key] = [o.properties for o in others]
    props = dict(rec.properties)
    if req.enrollment_workflows and facts is not None:
        props.update(await facts(req))
    return FetchRecordResult(found=True, properties=props, associated=associated)


def worker_config(settings: Settings) -> dict[str, Any]:
    return {"custom_code_task_queue": settings.temporal.custom_code_task_queue}


def build_internal_activities(deps: Deps) -> list[Any]:
    @activity.defn(name=dispatch.FETCH_RECORD)
    async def fetch(req: FetchRecordRequest) -> FetchRecordResult:
        return await fetch_record(deps.store, req, enrollment_facts(deps))

    @activity.defn(name=dispatch.RESOLVE_VALUE)
    async def resolve_value(req: ResolveValueRequest) -> ResolveValueResult:
        values = await deps.resolver.resolve(req.request, {"expression": req.expression})
        return ResolveValueResult(value=values.get("expression"))

    @activity.defn(name=dispatch.RECORD_PROGRESS)
    async def record_progress(p: RunProgress) -> None:
        await deps.history.record_progress(p)

    @activity.defn(name=dispatch.WORKER_CONFIG)
    async def config(_: None) -> dict[str, Any]:
        return worker_config(deps.settings)

    return [fetch, resolve_value, record_progress, config]
