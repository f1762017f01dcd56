"""Starting, signalling and inspecting EnrolledRecord workflows in Temporal.

Every start uses the deterministic id from the ledger row with id conflict policy USE_EXISTING
(a retried or recovered start attaches to the running execution) and reuse policy
REJECT_DUPLICATE (an enrollment number that already ran never runs again). So starting the same
ledger row twice — a redelivered event, a retry after a timeout, the recovery sweep — starts
exactly one execution.
"""

from __future__ import annotations

import logging
from typing import Protocol

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from crmflow.model.enrollment import (
    WORKFLOW_SIGNAL_EVENT,
    WORKFLOW_SIGNAL_UNENROLL,
    EnrollmentInput,
    RecordEventSignal,
    UnenrollSignal,
)
from crmflow.temporal import search_attributes as sa
from crmflow.temporal.ids import ENROLLMENT_WORKFLOW_TYPE

log = logging.getLogger("crmflow.enrollment.starter")


def enrollment_search_attributes(inp: EnrollmentInput) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(sa.TENANT_ID, inp.tenant_id),
            SearchAttributePair(sa.WORKFLOW_ID, inp.workflow_id),
            SearchAttributePair(sa.REVISION, inp.revision),
            SearchAttributePair(sa.OBJECT_TYPE, inp.object_type),
            SearchAttributePair(sa.RECORD_ID, inp.record_id),
            SearchAttributePair(sa.STATUS, "running"),
        ]
    )


class StarterPort(Protocol):
    """What the enrollment rules need from Temporal (tests record calls instead)."""

    async def start(self, run_id: str, inp: EnrollmentInput) -> bool: ...

    async def is_running(self, run_id: str) -> bool | None: ...

    async def unenroll(self, run_id: str, signal: UnenrollSignal) -> bool: ...

    async def record_event(self, run_id: str, signal: RecordEventSignal) -> None: ...


def run_summary(inp: EnrollmentInput) -> str:
    """What the Temporal UI lists for the run: the workflow's name, then the record."""
    name = inp.definition.name or inp.workflow_id
    return f"{name}: {inp.object_type} {inp.record_id}"


def run_details(inp: EnrollmentInput) -> str:
    """Markdown shown on the run's page: where it came from, without any record data."""
    return "\n".join(
        [
            f"**Workflow** {inp.definition.name or '(unnamed)'} (`{inp.workflow_id}`, "
            f"revision {inp.revision})",
            f"**Record** {inp.object_type} `{inp.record_id}`, enrollment #{inp.enrollment_number}",
            f"**Trigger** {inp.trigger or 'unknown'}, at {inp.enrolled_at:%Y-%m-%d %H:%M:%S %Z}",
        ]
    )


class Starter:
    def __init__(self, client: Client, task_queue: str) -> None:
        self.client = client
        self.task_queue = task_queue

    async def start(self, run_id: str, inp: EnrollmentInput) -> bool:
        """Start (or find) the execution. True if it runs or ran under this id."""
        try:
            await self.client.start_workflow(
                ENROLLMENT_WORKFLOW_TYPE,
                inp,
                id=run_id,
                task_queue=self.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=enrollment_search_attributes(inp),
                static_summary=run_summary(inp),
                static_details=run_details(inp),
            )
        except WorkflowAlreadyStartedError:
            pass  # it ran already under this id (closed): started exactly once
        return True

    async def is_running(self, run_id: str) -> bool | None:
        """True running, False closed, None never started."""
        try:
            desc = await self.client.get_workflow_handle(run_id).describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
        return desc.status == WorkflowExecutionStatus.RUNNING

    async def unenroll(self, run_id: str, signal: UnenrollSignal) -> bool:
        """Signal the run to leave before its next action. False if it is not running."""
        try:
            await self.client.get_workflow_handle(run_id).signal(WORKFLOW_SIGNAL_UNENROLL, signal)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
        return True

    async def record_event(self, run_id: str, signal: RecordEventSignal) -> None:
        try:
            await self.client.get_workflow_handle(run_id).signal(WORKFLOW_SIGNAL_EVENT, signal)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                log.warning("record_event signal to %s failed: %s", run_id, exc)
