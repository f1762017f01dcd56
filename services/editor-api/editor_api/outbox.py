"""The hand-off outbox: publish / turn-off intents for enrollment, delivered at least once.

A status change writes its intent (``editor_handoffs``) in the same transaction; the request
then delivers it inline, and ``Deliverer.retry_loop`` retries whatever is left with
exponential backoff (at most 5 minutes apart). At most one row per workflow: the newest intent
replaces an undelivered older one, and a delivery deletes only the row it delivered.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from editor_api import repository as repo
from editor_api.db import HandoffRow
from editor_api.documents import revision_model
from editor_api.enrollment_client import EnrollmentGateway
from editor_api.service import EditorCore

log = logging.getLogger("editor_api.outbox")
MAX_BACKOFF = 300.0
# The request that wrote an intent delivers it inline; the retrier waits this long first.
INLINE_GRACE = timedelta(seconds=30)


async def put_handoff(
    session: AsyncSession,
    *,
    tenant_id: str,
    workflow_id: str,
    kind: str,
    revision: int = 0,
    enroll_existing: bool = False,
    now: datetime,
) -> None:
    """The newest intent replaces an undelivered older one (turning off wins over activating)."""
    await session.merge(
        HandoffRow(
            tenant_id=tenant_id,
            workflow_id=workflow_id,
            kind=kind,
            revision=revision,
            enroll_existing=enroll_existing,
            attempts=0,
            last_error="",
            created_at=now,
            # The request that wrote it delivers it inline; the retrier waits its turn.
            next_attempt_at=now + INLINE_GRACE,
        )
    )


async def due_handoffs(
    session: AsyncSession, *, now: datetime, limit: int = 50
) -> list[HandoffRow]:
    stmt = (
        select(HandoffRow)
        .where(col(HandoffRow.next_attempt_at) <= now)
        .order_by(col(HandoffRow.next_attempt_at))
        .limit(limit)
    )
    return list((await session.exec(stmt)).all())


async def finish_handoff(session: AsyncSession, *, handoff: HandoffRow) -> None:
    """Delete only the row that was delivered (a newer intent may have replaced it)."""
    await session.exec(  # type: ignore[call-overload]
        delete(HandoffRow).where(
            col(HandoffRow.tenant_id) == handoff.tenant_id,
            col(HandoffRow.workflow_id) == handoff.workflow_id,
            col(HandoffRow.created_at) == handoff.created_at,
            col(HandoffRow.kind) == handoff.kind,
        )
    )


async def fail_handoff(
    session: AsyncSession, *, handoff: HandoffRow, error: str, retry_at: datetime
) -> None:
    await session.exec(  # type: ignore[call-overload]
        update(HandoffRow)
        .where(
            col(HandoffRow.tenant_id) == handoff.tenant_id,
            col(HandoffRow.workflow_id) == handoff.workflow_id,
            col(HandoffRow.created_at) == handoff.created_at,
        )
        .values(attempts=HandoffRow.attempts + 1, last_error=error[:2000], next_attempt_at=retry_at)
    )


class Deliverer:
    def __init__(self, core: EditorCore, enrollment: EnrollmentGateway) -> None:
        self.core = core
        self.enrollment = enrollment
        # Hand-offs being delivered by this process (inline and retrier never race here;
        # across replicas a duplicate delivery is harmless: enrollment's rpcs are idempotent).
        self._inflight: set[tuple[str, str]] = set()
        self._again: set[tuple[str, str]] = set()

    async def deliver(self, tenant_id: str, workflow_id: str) -> bool:
        """Deliver the workflow's pending hand-off, if any; True when nothing is left."""
        key = (tenant_id, workflow_id)
        if key in self._inflight:
            self._again.add(key)  # a newer intent: the running delivery goes round again
            return False
        self._inflight.add(key)
        try:
            while True:
                self._again.discard(key)
                done = await self._deliver(tenant_id, workflow_id)
                if key not in self._again:
                    return done
        finally:
            self._inflight.discard(key)

    async def _deliver(self, tenant_id: str, workflow_id: str) -> bool:
        async with self.core.sessions() as s:
            h = await repo.get_handoff(s, tenant_id=tenant_id, workflow_id=workflow_id)
            if h is None:
                return True
            rev = None
            if h.kind == "activate":
                rev = revision_model(
                    await repo.get_revision(
                        s, tenant_id=tenant_id, workflow_id=workflow_id, revision=h.revision
                    )
                )
        try:
            if rev is not None:
                await self.enrollment.activate(rev, enroll_existing=h.enroll_existing)
            else:
                await self.enrollment.deactivate(
                    tenant_id, workflow_id, unenroll_existing=h.enroll_existing
                )
        except Exception as exc:  # any failure: keep the outbox row, retry later
            delay = min(MAX_BACKOFF, 2.0 ** min(h.attempts, 10))
            log.warning(
                "hand-off %s of %s failed (attempt %d): %s",
                h.kind,
                workflow_id,
                h.attempts + 1,
                exc,
            )
            async with self.core.sessions() as s, s.begin():
                await fail_handoff(
                    s,
                    handoff=h,
                    error=str(exc),
                    retry_at=self.core.clock() + timedelta(seconds=delay),
                )
            return False
        async with self.core.sessions() as s, s.begin():
            await finish_handoff(s, handoff=h)
        return True

    async def deliver_due(self) -> int:
        async with self.core.sessions() as s:
            due = await due_handoffs(s, now=self.core.clock())
        delivered = 0
        for h in due:
            delivered += await self.deliver(h.tenant_id, h.workflow_id)
        return delivered

    async def retry_loop(self, interval: float = 2.0) -> None:
        while True:
            try:
                await self.deliver_due()
            except Exception:
                log.exception("hand-off retry pass failed")
            await asyncio.sleep(interval)
