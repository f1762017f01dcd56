"""Building blocks for executor workflow tests: definitions, inputs, a running worker."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from executor.activities.base import Deps
from executor.db import migrate
from executor.history import History
from executor.resolver import InputResolver, LocalTokens
from executor.worker import custom_code_worker, main_worker
from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.worker import Worker

from crmflow.db import create_engine
from crmflow.model.actions import Action, Branch, Connection, EdgeType
from crmflow.model.enrollment import EnrollmentInput, EnrollmentResult
from crmflow.model.settings import WorkflowSettings
from crmflow.model.workflow import WorkflowDefinition
from crmflow.settings import Settings, TemporalSettings
from crmflow.temporal import search_attributes as sa
from crmflow.temporal.ids import ENROLLMENT_WORKFLOW_TYPE, enrollment_workflow_id
from tests.workflows.memstore import MemoryStore


def act(
    action_id: str, action_type: str, nxt: str = "", *, goto: bool = False, **fields: Any
) -> Action:
    conn = (
        Connection(next_action_id=nxt, edge_type=EdgeType.GOTO if goto else EdgeType.STANDARD)
        if nxt
        else None
    )
    return Action(action_id=action_id, action_type=action_type, fields=fields, connection=conn)


def branch(branch_id: str, nxt: str = "", **kw: Any) -> Branch:
    return Branch(
        branch_id=branch_id, connection=Connection(next_action_id=nxt) if nxt else None, **kw
    )


def definition(
    actions: list[Action], *, settings: WorkflowSettings | None = None, object_type: str = "contact"
) -> WorkflowDefinition:
    return WorkflowDefinition(
        workflow_id="wf-1",
        name="test",
        object_type=object_type,
        start_action_id=actions[0].action_id if actions else "",
        actions={a.action_id: a for a in actions},
        settings=settings or WorkflowSettings(),
    )


def enrollment(
    tenant_id: str,
    record_id: str,
    defn: WorkflowDefinition,
    *,
    enrolled_at: datetime | None = None,
    n: int = 1,
    **kw: Any,
) -> EnrollmentInput:
    return EnrollmentInput(
        tenant_id=tenant_id,
        workflow_id=defn.workflow_id or "wf-1",
        revision=1,
        object_type=defn.object_type,
        record_id=record_id,
        enrollment_number=n,
        enrolled_at=enrolled_at or datetime.now(UTC),
        definition=defn,
        **kw,
    )


@dataclass
class Harness:
    client: Client
    store: MemoryStore
    history: History
    settings: Settings
    task_queue: str
    deps: Deps
    search_attributes: bool = True

    async def start(self, inp: EnrollmentInput, **kw: Any) -> WorkflowHandle[Any, EnrollmentResult]:
        wf_id = enrollment_workflow_id(
            inp.tenant_id, inp.workflow_id, inp.object_type, inp.record_id, inp.enrollment_number
        )
        wf_id = f"{wf_id}-{uuid.uuid4().hex[:6]}"  # unique per test run on a shared server
        if self.search_attributes:  # as enrollment starts it
            kw.setdefault(
                "search_attributes",
                TypedSearchAttributes(
                    [
                        SearchAttributePair(sa.TENANT_ID, inp.tenant_id),
                        SearchAttributePair(sa.WORKFLOW_ID, inp.workflow_id),
                        SearchAttributePair(sa.REVISION, inp.revision),
                        SearchAttributePair(sa.OBJECT_TYPE, inp.object_type),
                        SearchAttributePair(sa.RECORD_ID, inp.record_id),
                    ]
                ),
            )
        return await self.client.start_workflow(
            ENROLLMENT_WORKFLOW_TYPE,
            inp,
            id=wf_id,
            task_queue=self.task_queue,
            result_type=EnrollmentResult,
            **kw,
        )

    async def run(self, inp: EnrollmentInput) -> EnrollmentResult:
        return await (await self.start(inp)).result()


def make_settings(tmp_path: Path, task_queue: str, **kw: Any) -> Settings:
    return Settings(
        data_dir=tmp_path,
        webhook_allow_private=["127.0.0.1", "localhost"],
        # TemporalSettings' queue fields only take their CRMFLOW_* aliases as input.
        temporal=TemporalSettings().model_copy(
            update={"task_queue": task_queue, "custom_code_task_queue": f"{task_queue}-code"}
        ),
        **kw,
    )


@asynccontextmanager
async def running_worker(
    client: Client,
    tmp_path: Path,
    task_queue: str,
    *,
    store: MemoryStore | None = None,
    resolver: InputResolver | None = None,
    settings: Settings | None = None,
    custom_code: bool = False,
    search_attributes: bool = True,
    **worker_kw: Any,
) -> AsyncIterator[Harness]:
    settings = settings or make_settings(tmp_path, task_queue)
    url = settings.service_database_url("executor")
    await migrate(url)
    engine = create_engine(url)
    store = store or MemoryStore()
    history = History(engine)
    deps = Deps(
        settings=settings, store=store, resolver=resolver or LocalTokens(store), history=history
    )
    # The interpreter under the full sandbox here (production passes it through, see
    # executor.worker): every workflow test doubles as a check that it makes no restricted call.
    worker_kw.setdefault("strict_sandbox", True)
    workers: list[Worker] = [main_worker(client, deps, **worker_kw)]
    if custom_code:
        workers.append(custom_code_worker(client, deps))
    try:
        async with workers[0]:
            if custom_code:
                async with workers[1]:
                    yield Harness(
                        client, store, history, settings, task_queue, deps, search_attributes
                    )
            else:
                yield Harness(client, store, history, settings, task_queue, deps, search_attributes)
    finally:
        await engine.dispose()
