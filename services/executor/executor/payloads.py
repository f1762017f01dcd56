"""Payloads between the EnrolledRecord workflow and its activities (pure pydantic).

One model in, one model out for every activity. This module is imported inside the workflow
sandbox (passed through), so it must stay free of I/O imports.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, Field

from crmflow.model.base import Model
from crmflow.model.data_sources import DataSource
from crmflow.model.records import ChangeEvent
from crmflow.model.triggers import Trigger


class ActionRequest(Model):
    """Everything one side-effecting action needs; ``fields`` are unresolved (may hold tokens)."""

    tenant_id: str
    workflow_id: str
    revision: int
    object_type: str
    record_id: str
    run_workflow_id: str
    enrollment_number: int = 1
    action_id: str
    action_type: str
    type_version: int = 1
    fields: dict[str, Any] = Field(default_factory=dict)
    visit: int = 1
    idempotency_key: str
    action_outputs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    event_properties: dict[str, Any] = Field(default_factory=dict)
    time_zone: str = "UTC"
    # The pinned revision's data sources (the resolver reads them) and enrollment triggers
    # (create-record's infinite-loop guard).
    data_sources: list[DataSource] = Field(default_factory=list)
    triggers: list[Trigger] = Field(default_factory=list)
    # The run's last step: the activity writes this run-history update (completed, with the
    # outcomes not yet written plus its own) in the same group commit as its dedupe record,
    # and the workflow needs no closing write of its own.
    final_progress: RunProgress | None = None


class ActionResult(Model):
    status: Literal["succeeded", "skipped"] = "succeeded"
    reason: str = ""  # why skipped / a short note for the timeline
    outputs: dict[str, Any] = Field(default_factory=dict)
    attempt: int = 1
    started_at: AwareDatetime | None = None
    recorded: bool = False  # final_progress (and this outcome) is in the run history


class AssociationRef(Model):
    object_type: str
    label: str = ""


class FetchRecordRequest(Model):
    tenant_id: str
    object_type: str
    record_id: str
    associations: list[AssociationRef] = Field(default_factory=list)
    # Workflows whose "has been / is currently enrolled" facts an if/then branch reads: the
    # result's properties get ``@enrollment:<id>`` from EnrollmentService.ListRecordEnrollments.
    enrollment_workflows: list[str] = Field(default_factory=list)


class FetchRecordResult(Model):
    found: bool
    properties: dict[str, Any] = Field(default_factory=dict)
    # Keyed like crmflow.criteria expects: "object_type" or "object_type:label".
    associated: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)


class ResolveValueRequest(Model):
    """Resolve one token expression (value-equals branches on an expression)."""

    request: ActionRequest
    expression: str


class ResolveValueResult(Model):
    value: Any = None


class ActionOutcome(Model):
    action_id: str
    action_type: str
    visit: int = 1
    status: Literal["succeeded", "failed", "skipped"]
    reason: str = ""
    attempts: int = 1
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None
    outputs: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str = ""


class RunProgress(Model):
    """Run-history update written by a local activity after each step and at start/end."""

    tenant_id: str
    run_workflow_id: str
    workflow_id: str
    revision: int
    object_type: str
    record_id: str
    enrollment_number: int = 1
    enrolled_at: AwareDatetime
    status: Literal["running", "completed", "unenrolled", "failed"] = "running"
    current_step: str = ""
    reason: str = ""
    at: AwareDatetime
    # Outcomes since the last write (flushed at waits and at the end, to keep writes few).
    outcomes: list[ActionOutcome] = Field(default_factory=list)


class RunState(Model):
    """What survives continue-as-new (carried in the memo of the next run)."""

    next_action_id: str = ""
    visits: dict[str, int] = Field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    steps: int = 0
    failures: int = 0
    pending_events: list[ChangeEvent] = Field(default_factory=list)
    custom_code_task_queue: str = ""


ActionRequest.model_rebuild()
