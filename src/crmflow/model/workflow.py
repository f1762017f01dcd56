"""A workflow definition, and the immutable published revision an enrollment pins."""

from __future__ import annotations

from enum import StrEnum

from pydantic import AwareDatetime, Field, model_validator

from crmflow.model.actions import Action
from crmflow.model.base import Model
from crmflow.model.data_sources import MAX_DATA_SOURCES, DataSource
from crmflow.model.settings import WorkflowSettings
from crmflow.model.triggers import EnrollmentSettings


class WorkflowStatus(StrEnum):
    DRAFT = "WORKFLOW_STATUS_DRAFT"  # never published
    ON = "WORKFLOW_STATUS_ON"
    OFF = "WORKFLOW_STATUS_OFF"
    ARCHIVED = "WORKFLOW_STATUS_ARCHIVED"


class WorkflowDefinition(Model):
    """What the editor edits. Structural invariants only; publish-time checks are validation."""

    workflow_id: str = ""
    tenant_id: str = ""
    name: str = ""
    description: str = ""
    folder: str = ""
    object_type: str
    enrollment: EnrollmentSettings = Field(default_factory=EnrollmentSettings)
    start_action_id: str = ""
    actions: dict[str, Action] = Field(default_factory=dict)
    data_sources: list[DataSource] = Field(default_factory=list, max_length=MAX_DATA_SOURCES)
    settings: WorkflowSettings = Field(default_factory=WorkflowSettings)

    @model_validator(mode="after")
    def _keys_match_ids(self) -> WorkflowDefinition:
        for key, action in self.actions.items():
            if key != action.action_id:
                raise ValueError(f"actions[{key!r}] has action_id {action.action_id!r}")
        ids = [s.source_id for s in self.data_sources]
        if len(ids) != len(set(ids)):
            raise ValueError("data source ids must be unique")
        return self


class PublishedRevision(Model):
    """Frozen at publish; what enrollment indexes and every enrollment's workflow interprets."""

    tenant_id: str
    workflow_id: str
    revision: int = Field(ge=1)
    published_at: AwareDatetime
    definition: WorkflowDefinition
