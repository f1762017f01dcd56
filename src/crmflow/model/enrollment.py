"""Payloads between enrollment and the executor's EnrolledRecord workflow (Temporal payloads).

The workflow input pins the published revision (its whole definition), so a later publish never
changes a running enrollment. Secrets are never part of it: actions name secrets, the executor
resolves them inside activities.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, Field

from crmflow.model.base import Model
from crmflow.model.records import ChangeEvent
from crmflow.model.workflow import WorkflowDefinition

WORKFLOW_SIGNAL_UNENROLL = "unenroll"
WORKFLOW_SIGNAL_EVENT = "record_event"
WORKFLOW_QUERY_CURRENT_STEP = "current_step"


class EnrollmentInput(Model):
    tenant_id: str
    workflow_id: str
    revision: int = Field(ge=1)
    object_type: str
    record_id: str
    enrollment_number: int = Field(ge=1)
    enrolled_at: AwareDatetime
    trigger: str = ""  # "criteria", "event:EVENT_TYPE_FORM_SUBMITTED", "manual", "schedule", ...
    triggering_event: ChangeEvent | None = None
    definition: WorkflowDefinition


class UnenrollReason(StrEnum):
    MANUAL = "manual"
    GOAL_MET = "goal_met"
    CRITERIA_NOT_MET = "criteria_not_met"
    UNENROLLMENT_TRIGGER = "unenrollment_trigger"
    SUPPRESSED = "suppressed"
    RECORD_DELETED = "record_deleted"
    WORKFLOW_TURNED_OFF = "workflow_turned_off"
    ENROLLED_ELSEWHERE = "enrolled_elsewhere"


class UnenrollSignal(Model):
    reason: UnenrollReason
    detail: str = ""


class RecordEventSignal(Model):
    """An event for a running enrollment (wakes 'delay until event')."""

    event: ChangeEvent


class EnrollmentResult(Model):
    status: str  # completed | unenrolled | failed
    reason: str = ""
    steps: int = 0
