"""Pydantic payloads of the enrollment service's own Temporal workflows and activities.

Pure models (no I/O): imported by the workflow sandbox and by the activities alike.
"""

from __future__ import annotations

from pydantic import AwareDatetime

from crmflow.model.base import Model


class BackfillInput(Model):
    """State of an EnrollExistingRecords run; carried over continue-as-new."""

    tenant_id: str
    workflow_id: str
    revision: int
    page_size: int = 200
    pages_per_run: int = 20
    cursor: str = ""
    scanned: int = 0
    enrolled: int = 0
    skipped: int = 0
    pages: int = 0


class PageInput(Model):
    tenant_id: str
    workflow_id: str
    revision: int
    cursor: str = ""
    page_size: int = 200
    # Schedules: which trigger, and the tick's instant (the date-property day is computed from
    # it in the workflow's time zone).
    trigger_index: int = -1
    fired_at: AwareDatetime | None = None
    # Time re-check: the criteria are compared at ``since`` (the last check) and ``fired_at``.
    since: AwareDatetime | None = None


class PageResult(Model):
    next_cursor: str = ""
    scanned: int = 0
    enrolled: int = 0
    skipped: int = 0
    unenrolled: int = 0
    # The revision is no longer active (or the workflow is off): stop paging.
    stale: bool = False


class BackfillProgress(Model):
    tenant_id: str
    workflow_id: str
    revision: int
    scanned: int = 0
    enrolled: int = 0
    skipped: int = 0
    pages: int = 0
    done: bool = False


class ScheduleTickInput(Model):
    tenant_id: str
    workflow_id: str
    revision: int
    trigger_index: int


class TickResult(Model):
    scanned: int = 0
    enrolled: int = 0
    skipped: int = 0
    unenrolled: int = 0


class MaintenanceResult(Model):
    pruned: dict[str, int] = {}
    recovered: int = 0


class TimeRecheckInput(Model):
    """Started by the time re-check schedule of a revision with time-relative criteria."""

    tenant_id: str
    workflow_id: str
    revision: int


class RecheckWindow(Model):
    # None: nothing to do (stale revision, or the first check only sets the watermark)
    since: AwareDatetime | None = None
    # page the CRM for records that may enroll / the ledger for enrolled ones that may leave
    enrolling: bool = False
    leaving: bool = False
