"""Flow actions: enroll the record in another workflow, unenroll it from other workflows."""

from __future__ import annotations

from pydantic import Field

from crmflow.actions.registry import ActionSpec
from crmflow.model.base import Model

ENROLL_IN_WORKFLOW = "enroll_in_workflow"
UNENROLL_FROM_WORKFLOWS = "unenroll_from_workflows"


class EnrollInWorkflowFields(Model):
    workflow_id: str
    allow_reenrollment: bool = False


class UnenrollFromWorkflowsFields(Model):
    workflow_ids: list[str] = Field(min_length=1)
    reason: str = ""


SPECS = [
    ActionSpec(
        ENROLL_IN_WORKFLOW,
        EnrollInWorkflowFields,
        "Enroll in another workflow",
        "flow",
        summary=lambda f: f"Enroll in workflow {f.workflow_id}",
    ),  # type: ignore[attr-defined]
    ActionSpec(
        UNENROLL_FROM_WORKFLOWS,
        UnenrollFromWorkflowsFields,
        "Unenroll from other workflows",
        "flow",
        summary=lambda f: f"Unenroll from {len(f.workflow_ids)} workflow(s)",
    ),  # type: ignore[attr-defined]
]
