"""Builders for revisions and events, in proto form, for the enrollment integration tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from crmflow.api.crm.v1 import records_pb2
from crmflow.api.workflow.v1 import workflow_pb2
from crmflow.model.convert import to_proto
from crmflow.model.records import ChangeEvent, ChangeEventType, PropertyChange
from crmflow.model.workflow import PublishedRevision, WorkflowDefinition


def revision(
    tenant_id: str,
    workflow_id: str,
    enrollment: dict[str, Any],
    *,
    revision: int = 1,
    object_type: str = "contact",
    settings: dict[str, Any] | None = None,
) -> workflow_pb2.PublishedRevision:
    definition = WorkflowDefinition.model_validate(
        {
            "workflow_id": workflow_id,
            "tenant_id": tenant_id,
            "name": workflow_id,
            "object_type": object_type,
            "enrollment": enrollment,
            "settings": settings or {},
        }
    )
    rev = PublishedRevision(
        tenant_id=tenant_id,
        workflow_id=workflow_id,
        revision=revision,
        published_at=datetime.now(UTC),
        definition=definition,
    )
    return to_proto(rev, workflow_pb2.PublishedRevision)


def criteria(*filters: dict[str, Any], conjunction: str = "CONJUNCTION_AND") -> dict[str, Any]:
    return {"criteria": {"filter": {"conjunction": conjunction, "filters": list(filters)}}}


def update(
    tenant_id: str,
    record_id: str,
    changes: dict[str, tuple[Any, Any]],
    *,
    snapshot: dict[str, Any] | None = None,
    event_id: str | None = None,
    event_type: ChangeEventType = ChangeEventType.RECORD_UPDATED,
    object_type: str = "contact",
    **extra: Any,
) -> records_pb2.ChangeEvent:
    ev = ChangeEvent(
        event_id=event_id or uuid.uuid4().hex,
        tenant_id=tenant_id,
        event_type=event_type,
        object_type=object_type,
        record_id=record_id,
        occurred_at=datetime.now(UTC),
        changes=[
            PropertyChange(property=p, old_value=o, new_value=n) for p, (o, n) in changes.items()
        ],
        properties=snapshot or {},
        **extra,
    )
    return to_proto(ev, records_pb2.ChangeEvent)
