"""A worker killed (SIGKILL) inside an activity, after its CRM write committed: a new worker
resumes the enrollment and the write is not applied twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from crmflow.model.enrollment import EnrollmentResult
from crmflow.records.sql import SqlRecordStore
from crmflow.settings import Settings
from crmflow.temporal.ids import ENROLLMENT_WORKFLOW_TYPE
from tests.helpers import eventually
from tests.workflows.harness import act, definition, enrollment


def _worker(tmp_path: Path, address: str, queue: str, marker: str = "") -> subprocess.Popen[bytes]:
    args = [
        sys.executable,
        "-m",
        "tests.integration.executor.worker_proc",
        str(tmp_path),
        address,
        queue,
        *([marker] if marker else []),
    ]
    return subprocess.Popen(
        args, cwd=Path(__file__).parents[3], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


async def test_killed_worker_resumes_without_duplicate_side_effects(
    temporal_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, tenant_id: str
) -> None:
    address = temporal_env.client.service_client.config.target_host
    store = await SqlRecordStore.open(Settings(data_dir=tmp_path).crm_url(), migrate=True)
    rec = await store.create(tenant_id, "contact", {"num_employees": 10})
    marker = tmp_path / "written"
    first = _worker(tmp_path, address, task_queue, str(marker))
    second = None
    try:
        defn = definition(
            [
                act(
                    "inc",
                    "set_property",
                    "after",
                    property="num_employees",
                    mode="increment",
                    amount=5,
                ),
                act("after", "set_property", property="lifecyclestage", value="lead"),
            ]
        )
        inp = enrollment(tenant_id, rec.record_id, defn)
        handle = await temporal_env.client.start_workflow(
            ENROLLMENT_WORKFLOW_TYPE,
            inp,
            id=f"crash-{tenant_id}",
            task_queue=task_queue,
            result_type=EnrollmentResult,
        )

        async def written() -> bool:
            return marker.exists()

        await eventually(written, timeout=30)
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        assert (await store.get(tenant_id, "contact", rec.record_id)).properties[
            "num_employees"
        ] == 15  # committed before the crash
        second = _worker(tmp_path, address, task_queue)
        result = await handle.result()
        assert result.status == "completed"
        props = (await store.get(tenant_id, "contact", rec.record_id)).properties
        assert props["num_employees"] == 15  # not 20: the retry did not increment again
        assert props["lifecyclestage"] == "lead"
        events = [e async for e in handle.fetch_history_events()]
        attempts = [
            e.activity_task_started_event_attributes.attempt
            for e in events
            if e.HasField("activity_task_started_event_attributes")
        ]
        assert attempts[0] == 2  # the first action needed a second attempt
    finally:
        for p in (first, second):
            if p and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=10)
        await store.close()
