"""Background parts of the service: the recovery sweep, its Temporal worker and schedules.

Kept apart from ``main`` so the composition root stays a list of parts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio.client import Client

from crmflow.records.port import RecordStore
from crmflow.settings import Settings
from enrollment.enroller import Enroller
from enrollment.ingest import Ingestor
from enrollment.ledger import Ledger
from enrollment.trigger_index import TriggerIndex
from enrollment.workflows import ActiveWorkflows

log = logging.getLogger("crmflow.enrollment.runtime")

# A pending ledger row older than this is assumed orphaned by a crash and started again.
RECOVERY_AGE = timedelta(seconds=30)
RECOVERY_EVERY = 15.0


async def recover_pending(enroller: Enroller, index: TriggerIndex, *, age: timedelta) -> int:
    """Start the workflow of every ledger row left pending (same id: never a duplicate)."""
    started = 0
    rows = await enroller.ledger.pending_before(enroller.clock() - age)
    for row in rows:
        cw = index.get(row.tenant_id, row.workflow_id)
        if cw is None:
            continue
        if cw.revision.revision != row.revision:
            log.info("recovering %s with revision %d (was %d)", row.run_workflow_id,
                     cw.revision.revision, row.revision)
        if await enroller.start_row(row, cw):
            started += 1
    return started


@dataclass
class Runtime:
    settings: Settings
    client: Client
    ledger: Ledger
    index: TriggerIndex
    enroller: Enroller
    workflows: ActiveWorkflows
    ingestor: Ingestor
    records: RecordStore | None
    task_queue: str
    review: Any = None
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    async def wire(self) -> None:
        """Connect hooks (schedules, backfill) before the revisions are loaded."""

    async def start_background(self) -> None:
        self._tasks.append(asyncio.create_task(self._recovery_loop(), name="enrollment-recovery"))

    async def _recovery_loop(self) -> None:
        while True:
            try:
                n = await recover_pending(self.enroller, self.index, age=RECOVERY_AGE)
                if n:
                    log.warning("recovery sweep started %d orphaned enrollment(s)", n)
            except Exception:
                log.exception("recovery sweep failed")
            await asyncio.sleep(RECOVERY_EVERY)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
