"""Record actions: change the enrolled record or records around it."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field, model_validator

from crmflow.actions.registry import ActionSpec
from crmflow.model.base import Model

SET_PROPERTY = "set_property"
COPY_PROPERTY = "copy_property"
CLEAR_PROPERTY = "clear_property"
CREATE_RECORD = "create_record"
CREATE_TASK = "create_task"
CREATE_NOTE = "create_note"
ASSOCIATE_RECORDS = "associate_records"
REMOVE_ASSOCIATION = "remove_association"
ROTATE_OWNER = "rotate_owner"
ADD_TO_LIST = "add_to_list"
REMOVE_FROM_LIST = "remove_from_list"
SET_MARKETING_STATUS = "set_marketing_status"


class SetMode(StrEnum):
    SET = "set"  # value (may hold tokens: {{ sources.company.domain }})
    COPY = "copy"  # from another property of the enrolled record
    CLEAR = "clear"
    INCREMENT = "increment"
    DECREMENT = "decrement"
    ADD_DAYS = "add_days"  # date arithmetic on a date/datetime property


class SetPropertyFields(Model):
    property: str
    mode: SetMode = SetMode.SET
    value: Any = None
    source_property: str = ""  # COPY
    amount: float = 0  # INCREMENT / DECREMENT / ADD_DAYS
    # "" = the enrolled record; otherwise a data source id whose record is updated.
    target_source: str = ""

    @model_validator(mode="after")
    def _complete(self) -> SetPropertyFields:
        if self.mode == SetMode.SET and self.value is None:
            raise ValueError("mode 'set' needs value")
        if self.mode == SetMode.COPY and not self.source_property:
            raise ValueError("mode 'copy' needs source_property")
        return self


class CopyPropertyFields(Model):
    """Copy a property of the enrolled record to a property of itself or of associated records."""

    source_property: str
    target_property: str
    target_object_type: str = ""  # "" = the enrolled record itself
    association_label: str = ""


class ClearPropertyFields(Model):
    property: str


class CreateRecordFields(Model):
    object_type: str
    properties: dict[str, Any] = Field(default_factory=dict)
    associate_with_enrolled: bool = True
    association_label: str = ""


class CreateTaskFields(Model):
    title: str
    body: str = ""
    due_in_days: int = Field(default=0, ge=0, le=3650)
    priority: str = ""  # "", "LOW", "MEDIUM", "HIGH"
    task_type: str = "TODO"
    # An owner id, or "record_owner" for the enrolled record's owner; "" = unassigned.
    assign_to: str = ""


class CreateNoteFields(Model):
    body: str


class AssociateFields(Model):
    to_object_type: str
    to_record_id: str  # usually a token: {{ sources.company.hs_object_id }}
    label: str = ""


class RemoveAssociationFields(Model):
    to_object_type: str
    to_record_id: str = ""  # "" = every record of that type (with the label, if set)
    label: str = ""


class RotateOwnerFields(Model):
    """Round robin over users (owner_ids) or the members of teams (team_ids)."""

    owner_ids: list[str] = Field(default_factory=list)
    team_ids: list[str] = Field(default_factory=list)
    property: str = "hubspot_owner_id"
    overwrite: bool = True

    @model_validator(mode="after")
    def _someone(self) -> RotateOwnerFields:
        if not (self.owner_ids or self.team_ids):
            raise ValueError("rotate to at least one owner or team")
        return self


class ListFields(Model):
    list_id: str


class MarketingStatus(StrEnum):
    MARKETING = "marketing"
    NON_MARKETING = "non_marketing"


class MarketingStatusFields(Model):
    status: MarketingStatus
    property: str = "marketing_contact_status"


def _copy_summary(f: CopyPropertyFields) -> str:
    target = f"{f.target_object_type}." if f.target_object_type else ""
    return f"Copy {f.source_property} to {target}{f.target_property}"


SPECS = [
    ActionSpec(
        SET_PROPERTY,
        SetPropertyFields,
        "Set property value",
        "record",
        token_fields=("value",),
        summary=lambda f: f"Set {f.property}",  # type: ignore[attr-defined]
    ),
    ActionSpec(
        COPY_PROPERTY, CopyPropertyFields, "Copy property value", "record", summary=_copy_summary
    ),  # type: ignore[arg-type]
    ActionSpec(
        CLEAR_PROPERTY,
        ClearPropertyFields,
        "Clear property value",
        "record",
        summary=lambda f: f"Clear {f.property}",
    ),  # type: ignore[attr-defined]
    ActionSpec(
        CREATE_RECORD,
        CreateRecordFields,
        "Create record",
        "record",
        token_fields=("properties",),
        summary=lambda f: f"Create {f.object_type}",
    ),  # type: ignore[attr-defined]
    ActionSpec(
        CREATE_TASK,
        CreateTaskFields,
        "Create task",
        "record",
        token_fields=("title", "body"),
        summary=lambda f: f"Create task: {f.title}",
    ),  # type: ignore[attr-defined]
    ActionSpec(
        CREATE_NOTE,
        CreateNoteFields,
        "Create note",
        "record",
        token_fields=("body",),
        summary=lambda f: "Create note",
    ),
    ActionSpec(
        ASSOCIATE_RECORDS,
        AssociateFields,
        "Create associations",
        "record",
        token_fields=("to_record_id",),
        summary=lambda f: f"Associate with {f.to_object_type}",
    ),  # type: ignore[attr-defined]
    ActionSpec(
        REMOVE_ASSOCIATION,
        RemoveAssociationFields,
        "Remove associations",
        "record",
        token_fields=("to_record_id",),
        summary=lambda f: f"Remove {f.to_object_type} associations",
    ),  # type: ignore[attr-defined]
    ActionSpec(
        ROTATE_OWNER,
        RotateOwnerFields,
        "Rotate record to owner",
        "record",
        summary=lambda f: "Rotate to owner",
    ),
    ActionSpec(
        ADD_TO_LIST,
        ListFields,
        "Add to static list",
        "record",
        summary=lambda f: f"Add to list {f.list_id}",
    ),  # type: ignore[attr-defined]
    ActionSpec(
        REMOVE_FROM_LIST,
        ListFields,
        "Remove from static list",
        "record",
        summary=lambda f: f"Remove from list {f.list_id}",
    ),  # type: ignore[attr-defined]
    ActionSpec(
        SET_MARKETING_STATUS,
        MarketingStatusFields,
        "Set marketing contact status",
        "record",
        summary=lambda f: f"Set marketing status: {f.status.value}",
    ),  # type: ignore[attr-defined]
]
