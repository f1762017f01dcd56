"""Enroll existing records on publish: a durable backfill that survives a restart half-way."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from enrollment.main import start
from enrollment.payloads import BackfillProgress
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from crmflow.api.enrollment.v1 import enrollment_service_pb2 as pb
from crmflow.api.enrollment.v1 import enrollment_service_pb2_grpc as pb_grpc
from crmflow.records.sql import SqlRecordStore
from crmflow.temporal import search_attributes as sa
from crmflow.temporal.ids import backfill_workflow_id
from tests.helpers import eventually
from tests.integration.enrollment.conftest import service_settings
from tests.integration.enrollment.helpers import criteria, revision
from tests.integration.enrollment.standin import StandInEnrolledRecord

pytestmark = pytest.mark.temporal

LEAD = {"property": "lifecyclestage", "operator": "eq", "value": "lead"}


async def test_backfill_resumes_after_restart_without_duplicates(
    tmp_path: Path,
    temporal_env: WorkflowEnvironment,
    task_queue: str,
    tenant_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CRMFLOW_ENROLLMENT_BACKFILL_PAGE_SIZE", "2")
    monkeypatch.setenv("CRMFLOW_ENROLLMENT_BACKFILL_PAGES_PER_RUN", "3")  # continue-as-new too
    records = await SqlRecordStore.open(f"sqlite+aiosqlite:///{tmp_path / 'crm.db'}")
    for i in range(30):
        stage = "lead" if i % 3 else "customer"  # 20 leads
        await records.create(tenant_id, "contact", {"lifecyclestage": stage}, record_id=f"c{i}")
    settings = service_settings(tmp_path, temporal_env, task_queue)
    client = temporal_env.client
    wid = backfill_workflow_id(tenant_id, "wf-bf", 1)

    async with Worker(client, task_queue=task_queue, workflows=[StandInEnrolledRecord]):
        first = await start(settings, port=0, records=records)
        stub = pb_grpc.EnrollmentServiceStub(grpc.aio.insecure_channel(f"127.0.0.1:{first.port}"))
        res = await stub.ActivateRevision(
            pb.ActivateRevisionRequest(
                tenant_id=tenant_id,
                enroll_existing=True,
                revision=revision(tenant_id, "wf-bf", {"triggers": [criteria(LEAD)]}),
            )
        )
        assert res.backfill_workflow_id == wid
        # stop the service (and its worker) half-way
        handle = client.get_workflow_handle(wid, result_type=BackfillProgress)
        for _ in range(400):
            prog = await handle.query("progress", result_type=BackfillProgress)
            if prog.pages >= 2:
                break
            await asyncio.sleep(0.01)
        await first.stop(0)
        assert not prog.done, "the backfill finished before the restart; nothing was tested"

        second = await start(settings, port=0, records=records)
        try:
            stub = pb_grpc.EnrollmentServiceStub(
                grpc.aio.insecure_channel(f"127.0.0.1:{second.port}")
            )
            done = await handle.result()
            assert done.done and done.scanned >= 20
            got = await stub.GetBackfillProgress(
                pb.GetBackfillProgressRequest(tenant_id=tenant_id, workflow_id="wf-bf")
            )
            assert got.done and got.status == "completed" and got.backfill_workflow_id == wid

            # exactly the 20 leads, each once (visibility may trail the starts by a moment, far
            # less than the recovery sweep's period, so a start left to the sweep still fails)
            async def twenty_distinct() -> bool:
                ids = set()
                async for wf in client.list_workflows(
                    f"CrmflowTenantId = '{tenant_id}' AND WorkflowType = 'EnrolledRecord'"
                ):
                    ids.add(wf.id)
                count = await client.count_workflows(
                    f"CrmflowTenantId = '{tenant_id}' AND WorkflowType = 'EnrolledRecord'"
                )
                assert count.count == len(ids) == 20, (count.count, len(ids))
                return True

            await eventually(twenty_distinct, timeout=3)
            desc = await handle.describe()
            assert desc.typed_search_attributes.get(sa.STATUS) == "backfill_done"
            # publishing the same revision again does not run it twice
            res = await stub.ActivateRevision(
                pb.ActivateRevisionRequest(
                    tenant_id=tenant_id,
                    enroll_existing=True,
                    revision=revision(tenant_id, "wf-bf", {"triggers": [criteria(LEAD)]}),
                )
            )
            assert res.backfill_workflow_id == wid
            count = await client.count_workflows(
                f"CrmflowTenantId = '{tenant_id}' AND WorkflowType = 'EnrolledRecord'"
            )
            assert count.count == 20
        finally:
            await second.stop(0)
            await records.close()
