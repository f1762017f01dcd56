"""Deterministic Temporal workflow ids.

An enrollment's id is a pure function of (tenant, workflow, record, enrollment number), so a
redelivered event or a retried start finds the same execution instead of creating a second one
(together with the id conflict/reuse policies used by enrollment). Ids read well in the
Temporal UI: ``enroll/acme/wf-42/contact-1001/1``.
"""

from __future__ import annotations

import re

_SAFE = re.compile(r"^[A-Za-z0-9._:-]+$")

ENROLLMENT_WORKFLOW_TYPE = "EnrolledRecord"
BACKFILL_WORKFLOW_TYPE = "EnrollExistingRecords"


def _part(name: str, value: str) -> str:
    if not value or not _SAFE.match(value):
        raise ValueError(f"{name} {value!r} cannot be part of a workflow id")
    return value


def enrollment_workflow_id(
    tenant_id: str, workflow_id: str, object_type: str, record_id: str, enrollment_number: int
) -> str:
    if enrollment_number < 1:
        raise ValueError("enrollment_number starts at 1")
    return "/".join(
        [
            "enroll",
            _part("tenant_id", tenant_id),
            _part("workflow_id", workflow_id),
            f"{_part('object_type', object_type)}-{_part('record_id', record_id)}",
            str(enrollment_number),
        ]
    )


def backfill_workflow_id(tenant_id: str, workflow_id: str, revision: int) -> str:
    return (
        f"backfill/{_part('tenant_id', tenant_id)}/{_part('workflow_id', workflow_id)}/r{revision}"
    )


def action_idempotency_key(run_workflow_id: str, action_id: str, visit: int = 1) -> str:
    """Stable across activity retries and worker crashes; differs per loop visit of an action."""
    return f"{run_workflow_id}#{action_id}#{visit}"
