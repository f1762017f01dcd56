"""Internal activities the workflow runs as local activities: reads and run-history writes."""

from __future__ import annotations

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


async def fetch_record(store: RecordStore, req: FetchRecordRequest) -> FetchRecordResult:
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
    return FetchRecordResult(found=True, properties=rec.properties, associated=associated)


def worker_config(settings: Settings) -> dict[str, Any]:
    return {"custom_code_task_queue": settings.temporal.custom_code_task_queue}


def build_internal_activities(deps: Deps) -> list[Any]:
    @activity.defn(name=dispatch.FETCH_RECORD)
    async def fetch(req: FetchRecordRequest) -> FetchRecordResult:
        return await fetch_record(deps.store, req)

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
