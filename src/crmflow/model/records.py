"""CRM records and the change events the CRM emits (the enrollment service's input)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, Field

from crmflow.model.base import Model


class Record(Model):
    tenant_id: str
    object_type: str
    record_id: str
    properties: dict[str, Any] = Field(default_factory=dict)
    created_at: AwareDatetime | None = None
    updated_at: AwareDatetime | None = None


class PropertyChange(Model):
    property: str
    old_value: Any = None
    new_value: Any = None


class ChangeEventType(StrEnum):
    RECORD_CREATED = "CHANGE_EVENT_TYPE_RECORD_CREATED"
    RECORD_UPDATED = "CHANGE_EVENT_TYPE_RECORD_UPDATED"
    RECORD_DELETED = "CHANGE_EVENT_TYPE_RECORD_DELETED"
    ASSOCIATION_ADDED = "CHANGE_EVENT_TYPE_ASSOCIATION_ADDED"
    ASSOCIATION_REMOVED = "CHANGE_EVENT_TYPE_ASSOCIATION_REMOVED"
    LIST_MEMBERSHIP_ADDED = "CHANGE_EVENT_TYPE_LIST_MEMBERSHIP_ADDED"
    LIST_MEMBERSHIP_REMOVED = "CHANGE_EVENT_TYPE_LIST_MEMBERSHIP_REMOVED"
    FORM_SUBMITTED = "CHANGE_EVENT_TYPE_FORM_SUBMITTED"
    CUSTOM_EVENT = "CHANGE_EVENT_TYPE_CUSTOM_EVENT"


class ChangeEvent(Model):
    """One thing that happened to one record. ``event_id`` makes redelivery harmless."""

    event_id: str
    tenant_id: str
    event_type: ChangeEventType
    object_type: str
    record_id: str
    occurred_at: AwareDatetime
    changes: list[PropertyChange] = Field(default_factory=list)
    # RECORD_CREATED / RECORD_UPDATED: the record's full properties after the change (a
    # snapshot, so consumers need not read the record back; empty when the producer has none).
    # RECORD_DELETED: the properties the record had. FORM_SUBMITTED / CUSTOM_EVENT: the event's
    # own properties. ASSOCIATION_REMOVED because the associated record was deleted: the
    # properties that record had (empty for a removal of two records that both still exist).
    properties: dict[str, Any] = Field(default_factory=dict)
    event_name: str = ""
    form_id: str = ""
    list_id: str = ""
    associated_object_type: str = ""
    associated_record_id: str = ""
    association_label: str = ""
