"""Enrollments that ended by themselves: noticed through Temporal visibility, not by asking.

An enrollment leaves "is currently enrolled in X" when it is unenrolled (the service does it
and emits the change) or when its run simply finishes. Nothing tells the service about the
latter, and the ledger learns it lazily, when a rule asks Temporal. Workflows that trigger on
"is not currently enrolled in X" would then never fire. So, while some active workflow reads
enrollment facts, the recovery loop asks Temporal's visibility for EnrolledRecord runs closed
since the last look (by their search attributes: tenant, workflow, object type, record), marks
their ledger rows ended and emits the current -> past change (the same change id an
unenrollment of that run uses, so a run unenrolled and then closed counts once), through the
ledger's fact-change outbox like an unenrollment (a crash before the cascade is replayed).

The watermark ("closed since") is kept in the ledger (``sweep_watermark``), so a restart
resumes from the last complete pass instead of looking back only ``OVERLAP``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from temporalio.client import Client

from crmflow.temporal import search_attributes as sa
from crmflow.temporal.ids import ENROLLMENT_WORKFLOW_TYPE
from enrollment.enroller import Enroller
from enrollment.ledger import ACTIVE
from enrollment.trigger_index import TriggerIndex

log = logging.getLogger("crmflow.enrollment.ended_runs")

# Visibility trails the close by a moment; each look overlaps the previous one by this much
# (a run seen twice is skipped: its row is no longer active).
OVERLAP = timedelta(seconds=30)
# The watermark's name in the ledger (``sweep_watermark``).
WATERMARK = "ended_runs"
# First start without a watermark: look back to the oldest still active enrollment (no run
# the ledger thinks active can have closed before it began), but no further than Temporal's
# namespace retention (docs/operations.md: 30 days), past which closed runs are gone anyway.
FIRST_LOOKBACK = timedelta(days=30)


class EndedRuns:
    def __init__(self, client: Client, enroller: Enroller, index: TriggerIndex) -> None:
        self.client = client
        self.enroller = enroller
        self.index = index
        # loaded from the ledger by the first sweep (``load``)
        self.since: datetime | None = None

    async def load(self) -> datetime:
        """Where the first sweep of this process starts: the persisted watermark (the last
        complete pass of any replica, minus the overlap), else - the very first start - the
        oldest active enrollment's start (clamped to ``FIRST_LOOKBACK``), else now minus the
        overlap (nothing is active: nothing can have ended unnoticed)."""
        ledger = self.enroller.ledger
        at = await ledger.sweep_watermark(WATERMARK)
        if at is None:
            now = self.enroller.clock()
            oldest = await ledger.oldest_active_enrolled_at()
            at = now - OVERLAP if oldest is None else max(oldest - OVERLAP, now - FIRST_LOOKBACK)
        self.since = at
        return at

    async def _advance(self, to: datetime) -> None:
        self.since = to
        await self.enroller.ledger.set_sweep_watermark(WATERMARK, to)

    def wanted(self) -> bool:
        """Only while some active workflow reads enrollment facts (else no query at all)."""
        return any(cw.fact_workflows and cw.enabled for cw in self.index.workflows())

    async def sweep(self) -> int:
        """Reconcile the runs closed since the last sweep; returns how many were still active
        in the ledger. The watermark moves (in the ledger too) only after a complete pass."""
        started = self.enroller.clock()
        if self.since is None:
            await self.load()
        assert self.since is not None
        if not self.wanted():
            # nobody reads facts: runs closing now matter to no one (as before, a workflow
            # published later does not see ends from before it)
            await self._advance(started - OVERLAP)
            return 0
        since = self.since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        query = (
            f"WorkflowType = '{ENROLLMENT_WORKFLOW_TYPE}' AND ExecutionStatus != 'Running' "
            f"AND CloseTime >= '{since}'"
        )
        ledger = self.enroller.ledger
        n = 0
        async for ex in self.client.list_workflows(query):
            attrs = ex.typed_search_attributes
            tenant, wf = attrs.get(sa.TENANT_ID), attrs.get(sa.WORKFLOW_ID)
            object_type, record_id = attrs.get(sa.OBJECT_TYPE), attrs.get(sa.RECORD_ID)
            if not (tenant and wf and object_type and record_id):
                continue  # not started by this service
            row = await ledger.current(
                tenant_id=tenant, workflow_id=wf, object_type=object_type, record_id=record_id
            )
            if row is None or row.run_workflow_id != ex.id or row.status not in ACTIVE:
                continue
            # "ended" and (when read) the outbox row in one transaction, then the cascade
            change = await self.enroller.end_row(row, "ended")
            n += 1
            if change is not None:
                await self.enroller.emit(change, None)
        await self._advance(started - OVERLAP)
        return n
