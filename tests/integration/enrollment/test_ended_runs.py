"""The ended-runs visibility sweep across a restart, against the Temporal dev server: its
watermark is in the ledger, so a run that closed while the service was down (longer than the
30 s overlap) is still reconciled, and "is not currently enrolled in X" fires."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from enrollment.db import migrate
from enrollment.ended_runs import OVERLAP, WATERMARK, EndedRuns
from enrollment.enroller import Enroller
from enrollment.ingest import Ingestor
from enrollment.ledger import Ledger
from enrollment.starter import Starter
from enrollment.trigger_index import TriggerIndex
from enrollment.workflows import ActiveWorkflows
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from crmflow.db import create_engine, session_factory
from crmflow.model.records import ChangeEvent, ChangeEventType, PropertyChange
from crmflow.model.workflow import PublishedRevision, WorkflowDefinition
from crmflow.temporal.ids import ENROLLMENT_WORKFLOW_TYPE, enrollment_workflow_id
from tests.helpers import eventually
from tests.integration.enrollment.standin import StandInEnrolledRecord

pytestmark = pytest.mark.temporal

LEAD = {"property": "lifecyclestage", "operator": "eq", "value": "lead"}


@dataclass
class Parts:
    tenant: str
    client: Client
    ledger: Ledger
    enroller: Enroller
    ingestor: Ingestor
    index: TriggerIndex
    workflows: ActiveWorkflows
    shift: list[timedelta]  # added to the wall clock: "the process started later"

    async def publish(self, workflow_id: str, enrollment: dict[str, object]) -> None:
        d = WorkflowDefinition.model_validate(
            {
                "workflow_id": workflow_id,
                "tenant_id": self.tenant,
                "object_type": "contact",
                "enrollment": enrollment,
            }
        )
        rev = PublishedRevision(
            tenant_id=self.tenant,
            workflow_id=workflow_id,
            revision=1,
            published_at=datetime.now(UTC),
            definition=d,
        )
        await self.workflows.activate(rev, enroll_existing=False, now=datetime.now(UTC))


@pytest.fixture
async def parts(
    tmp_path: Path, temporal_env: WorkflowEnvironment, task_queue: str, tenant_id: str
) -> AsyncIterator[Parts]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'enrollment.db'}"
    await migrate(url)
    engine = create_engine(url)
    ledger = Ledger(session_factory(engine))
    shift = [timedelta(0)]
    clock: Callable[[], datetime] = lambda: datetime.now(UTC) + shift[0]  # noqa: E731
    client = temporal_env.client
    enroller = Enroller(
        ledger=ledger, starter=Starter(client, task_queue), records=None, clock=clock
    )
    index = TriggerIndex()
    workflows = ActiveWorkflows(index=index, ledger=ledger, enroller=enroller)
    ingestor = Ingestor(index=index, enroller=enroller)
    async with Worker(client, task_queue=task_queue, workflows=[StandInEnrolledRecord]):
        try:
            yield Parts(tenant_id, client, ledger, enroller, ingestor, index, workflows, shift)
        finally:
            await ledger.close()
            await engine.dispose()


def _not_currently(wf: str) -> dict[str, object]:
    cond = "ENROLLMENT_CONDITION_IS_NOT_CURRENTLY_ENROLLED"
    return {
        "criteria": {"filter": {"enrollment_filters": [{"workflow_id": wf, "condition": cond}]}}
    }


async def test_a_restart_resumes_the_sweep_from_its_persisted_watermark(parts: Parts) -> None:
    await parts.publish("a", {"triggers": [{"criteria": {"filter": {"filters": [LEAD]}}}]})
    await parts.publish("b", {"triggers": [_not_currently("a")]})
    ev = ChangeEvent(
        event_id=uuid.uuid4().hex,
        tenant_id=parts.tenant,
        event_type=ChangeEventType.RECORD_UPDATED,
        object_type="contact",
        record_id="c1",
        occurred_at=datetime.now(UTC),
        changes=[
            PropertyChange(property="lifecyclestage", old_value="subscriber", new_value="lead")
        ],
        properties={"lifecyclestage": "lead"},
    )
    _, out = await parts.ingestor.ingest(ev)
    assert [(o.workflow_id, o.outcome) for o in out] == [("a", "enrolled")]

    # the first process sweeps once (nothing closed yet) and keeps its watermark in the ledger
    first = EndedRuns(parts.client, parts.enroller, parts.index)
    assert await first.sweep() == 0
    saved = await parts.ledger.sweep_watermark(WATERMARK)
    assert saved is not None and saved == first.since

    # it stops; while it is down a's run finishes, and the next process starts 10 minutes
    # later: an in-memory watermark (now - 30 s) would never look back at that close
    run_a = enrollment_workflow_id(parts.tenant, "a", "contact", "c1", 1)
    await parts.client.get_workflow_handle(run_a).terminate("finished while the service was down")

    async def visible() -> bool:
        q = f"WorkflowType = '{ENROLLMENT_WORKFLOW_TYPE}' AND WorkflowId = '{run_a}' "
        q += "AND ExecutionStatus != 'Running'"
        return [x async for x in parts.client.list_workflows(q)] != []

    await eventually(visible, timeout=20)
    parts.shift[0] = timedelta(minutes=10)
    second = EndedRuns(parts.client, parts.enroller, parts.index)
    assert await second.load() == saved
    assert await second.sweep() == 1
    run_b = enrollment_workflow_id(parts.tenant, "b", "contact", "c1", 1)
    await parts.client.get_workflow_handle(run_b).describe()  # b started
    # the watermark moved on (persisted), and the run is not reconciled twice
    moved = await parts.ledger.sweep_watermark(WATERMARK)
    assert moved is not None and moved > saved
    assert moved == second.since
    assert moved >= datetime.now(UTC) + timedelta(minutes=10) - OVERLAP - timedelta(seconds=60)
    third = EndedRuns(parts.client, parts.enroller, parts.index)
    assert await third.load() == moved
    assert await third.sweep() == 0
