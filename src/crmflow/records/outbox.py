"""Delivers the embedded store's change events (the transactional outbox) to enrollment.

The store writes an outbox row in the same transaction as each change; this dispatcher reads
undelivered rows in commit order, hands a batch to ``deliver`` (in production an
``EnrollmentService.IngestEvents`` call), and marks the batch delivered only after ``deliver``
returned. A crash between the two re-delivers the batch: delivery is AT LEAST ONCE, and the
receiver dedupes on ``event_id``.

On failure the whole queue backs off (exponentially, capped) rather than skipping the failed
batch, so events of one record are never delivered out of order. ``deliver`` should therefore
accept (and itself report) events it can't use instead of failing on them forever; the failed
attempt count and last error are kept on the rows for operators.

One dispatcher per store (the datasource-resolver process owns the embedded store and runs it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa

from crmflow.model.records import ChangeEvent
from crmflow.records.sql_base import OUTBOX

if TYPE_CHECKING:
    from crmflow.records.sql_base import SqlBase

log = logging.getLogger("crmflow.records.outbox")

Deliver = Callable[[list[ChangeEvent]], Awaitable[None]]


class OutboxDispatcher:
    def __init__(
        self,
        store: SqlBase,
        deliver: Deliver,
        *,
        batch_size: int = 200,
        poll_interval: float = 0.25,
        min_backoff: float = 0.5,
        max_backoff: float = 60.0,
        retention: timedelta = timedelta(days=7),
    ) -> None:
        self.store = store
        self.deliver = deliver
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.retention = retention  # delivered rows are purged after this long
        self.failures = 0  # consecutive failed deliveries
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    def backoff(self) -> float:
        return min(self.max_backoff, self.min_backoff * 2 ** max(0, self.failures - 1))

    async def dispatch_once(self) -> int:
        """Deliver one batch; returns how many events were delivered. Raises what deliver raised."""
        async with self.store.read() as conn:
            rows = (
                await conn.execute(
                    sa.select(OUTBOX.c.seq, OUTBOX.c.payload)
                    .where(OUTBOX.c.delivered_at.is_(None))
                    .order_by(OUTBOX.c.seq)
                    .limit(self.batch_size)
                )
            ).all()
        if not rows:
            return 0
        seqs = [r.seq for r in rows]
        events = [ChangeEvent.model_validate(r.payload) for r in rows]
        try:
            await self.deliver(events)
        except Exception as exc:
            self.failures += 1
            async with self.store.write() as conn:
                await conn.execute(
                    OUTBOX.update()
                    .where(OUTBOX.c.seq.in_(seqs))
                    .values(
                        attempts=OUTBOX.c.attempts + 1,
                        last_error=repr(exc)[:500],
                        next_attempt_at=self.store.now() + timedelta(seconds=self.backoff()),
                    )
                )
            raise
        self.failures = 0
        async with self.store.write() as conn:
            await conn.execute(
                OUTBOX.update().where(OUTBOX.c.seq.in_(seqs)).values(delivered_at=self.store.now())
            )
        return len(rows)

    async def run(self) -> None:
        """Loop until ``stop()``: drain, then poll; back off after a failed delivery. Purges
        delivered rows older than ``retention`` about once an hour."""
        next_purge = 0.0
        while not self._stop.is_set():
            if time.monotonic() >= next_purge:
                next_purge = time.monotonic() + 3600
                try:
                    await self.purge_delivered(self.store.now() - self.retention)
                except Exception:
                    log.warning("outbox purge failed", exc_info=True)
            try:
                n = await self.dispatch_once()
                wait = 0.0 if n == self.batch_size else self.poll_interval
            except Exception:
                wait = self.backoff()
                log.warning(
                    "outbox delivery failed (attempt %d); retrying in %.1fs",
                    self.failures,
                    wait,
                    exc_info=True,
                )
            if wait:
                try:
                    await asyncio.wait_for(self._stop.wait(), timeout=wait)
                except TimeoutError:
                    pass

    def start(self) -> asyncio.Task[None]:
        self._stop.clear()
        self._task = asyncio.create_task(self.run(), name="crm-outbox-dispatcher")
        return self._task

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def pending(self, tenant_id: str | None = None) -> list[ChangeEvent]:
        """Undelivered events, oldest first (operators, tests)."""
        q = sa.select(OUTBOX.c.payload).where(OUTBOX.c.delivered_at.is_(None))
        if tenant_id is not None:
            q = q.where(OUTBOX.c.tenant_id == tenant_id)
        async with self.store.read() as conn:
            return [
                ChangeEvent.model_validate(r.payload)
                for r in await conn.execute(q.order_by(OUTBOX.c.seq))
            ]

    async def purge_delivered(self, older_than: datetime) -> int:
        """Drop delivered rows (the outbox is not an event archive)."""
        async with self.store.write() as conn:
            res = await conn.execute(
                OUTBOX.delete().where(
                    OUTBOX.c.delivered_at.is_not(None), OUTBOX.c.delivered_at < older_than
                )
            )
            return int(res.rowcount or 0)
