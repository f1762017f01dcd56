"""The bare peer of bench/executor_bench.py: the same three steps as a hand-written workflow.

In its own module because the workflow sandbox re-imports a workflow's module (a script's
__main__ cannot be).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    import httpx

    from crmflow.model.base import Model
    from crmflow.records.sql import SqlRecordStore

DELAY_SECONDS = 1


# -- the bare peer ------------------------------------------------------------------------
class BareInput(Model):
    tenant_id: str
    record_id: str
    url: str


class BareStep(Model):
    tenant_id: str
    record_id: str
    key: str
    url: str = ""


@workflow.defn(name="BareThreeSteps")
class BareThreeSteps:
    @workflow.run
    async def run(self, inp: BareInput) -> str:
        wid = workflow.info().workflow_id
        retry = RetryPolicy(maximum_attempts=5)
        await workflow.execute_activity(
            "bare_set_property",
            BareStep(tenant_id=inp.tenant_id, record_id=inp.record_id, key=f"{wid}#set"),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=retry,
        )
        await workflow.sleep(DELAY_SECONDS)
        await workflow.execute_activity(
            "bare_webhook",
            BareStep(
                tenant_id=inp.tenant_id, record_id=inp.record_id, key=f"{wid}#hook", url=inp.url
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=retry,
        )
        return "completed"


def bare_activities(store: SqlRecordStore, http: httpx.AsyncClient) -> list[Any]:
    @activity.defn(name="bare_set_property")
    async def set_property(s: BareStep) -> None:
        await store.update(
            s.tenant_id, "contact", s.record_id, {"lifecyclestage": "lead"}, idempotency_key=s.key
        )

    @activity.defn(name="bare_webhook")
    async def webhook(s: BareStep) -> None:
        rec = await store.get(s.tenant_id, "contact", s.record_id)
        resp = await http.post(
            s.url, json={"properties": rec.properties}, headers={"Idempotency-Key": s.key}
        )
        resp.raise_for_status()

    return [set_property, webhook]
