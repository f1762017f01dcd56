"""Run history and the executor's bookkeeping, as keyword-only repository functions on one class.

Written by local activities (progress, outcomes) and by the action activities (attempt errors,
completed side effects, notifications, rotation state); read by the ExecutorService rpcs.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import select

from crmflow.db import session_factory
from executor.group_commit import GroupCommit
from executor.payloads import RunProgress
from executor.tables import (
    ActionLog,
    AttemptError,
    EnrollmentRun,
    Notification,
    RotationAssignment,
    RotationCounter,
    SideEffect,
)

RETENTION = timedelta(days=90)


def utc(value: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; they were stored in UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass
class EnrollmentPage:
    runs: list[EnrollmentRun]
    next_offset: int | None


class History:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._sessions = session_factory(engine)
        # Run-history writes from many concurrent enrollments share one transaction.
        self._commits = GroupCommit(self._apply_batch)

    # -- run progress ---------------------------------------------------------------------
    async def record_progress(self, p: RunProgress) -> None:
        await self._commits.submit(("progress", p))

    async def list_runs(
        self,
        *,
        tenant_id: str,
        workflow_id: str,
        status: str = "",
        record_id: str = "",
        offset: int = 0,
        limit: int = 50,
    ) -> EnrollmentPage:
        q = select(EnrollmentRun).where(
            EnrollmentRun.tenant_id == tenant_id, EnrollmentRun.workflow_id == workflow_id
        )
        if status:
            q = q.where(EnrollmentRun.status == status)
        if record_id:
            q = q.where(EnrollmentRun.record_id == record_id)
        q = q.order_by(EnrollmentRun.enrolled_at.desc(), EnrollmentRun.run_workflow_id)  # type: ignore[attr-defined]
        async with self._sessions() as s:
            rows = list((await s.exec(q.offset(offset).limit(limit + 1))).all())
        more = len(rows) > limit
        return EnrollmentPage(rows[:limit], offset + limit if more else None)

    async def get_run(self, *, tenant_id: str, run_workflow_id: str) -> EnrollmentRun | None:
        async with self._sessions() as s:
            return await s.get(EnrollmentRun, (tenant_id, run_workflow_id))

    async def timeline(self, *, tenant_id: str, run_workflow_id: str) -> list[ActionLog]:
        q = (
            select(ActionLog)
            .where(ActionLog.tenant_id == tenant_id, ActionLog.run_workflow_id == run_workflow_id)
            .order_by(ActionLog.id)  # type: ignore[arg-type]
        )
        async with self._sessions() as s:
            return list((await s.exec(q)).all())

    # -- attempts and dedupe ---------------------------------------------------------------
    async def record_attempt_error(
        self, *, tenant_id: str, key: str, attempt: int, error: str
    ) -> None:
        async with self._sessions() as s, s.begin():
            s.add(
                AttemptError(
                    tenant_id=tenant_id,
                    idempotency_key=key,
                    attempt=attempt,
                    error=error[:4000],
                    at=datetime.now(UTC),
                )
            )

    async def attempt_count(self, *, key: str) -> int:
        async with self._sessions() as s:
            n = await s.scalar(
                select(func.max(AttemptError.attempt)).where(AttemptError.idempotency_key == key)
            )
        return int(n or 0)

    async def attempt_errors(self, *, keys: Sequence[str]) -> list[AttemptError]:
        if not keys:
            return []
        q = select(AttemptError).where(AttemptError.idempotency_key.in_(list(keys)))  # type: ignore[attr-defined]
        async with self._sessions() as s:
            return list((await s.exec(q.order_by(AttemptError.id))).all())  # type: ignore[arg-type]

    async def completed_effect(self, *, key: str) -> dict[str, Any] | None:
        async with self._sessions() as s:
            row = await s.get(SideEffect, key)
        return dict(row.result) if row else None

    async def store_effect(self, *, tenant_id: str, key: str, result: dict[str, Any]) -> None:
        await self._commits.submit(("effect", (tenant_id, key, result)))

    async def _apply_batch(self, items: list[tuple[str, Any]]) -> None:
        """One transaction, a handful of statements per batch (not per item): with hundreds
        of enrollments stepping at once, per-row ORM work was the executor's main CPU cost."""
        effects = [item for kind, item in items if kind == "effect"]
        progress = [item for kind, item in items if kind == "progress"]
        async with self._sessions() as s, s.begin():
            conn = await s.connection()
            if effects:
                await _insert_effects(conn, effects)
            if progress:
                await _apply_progress(conn, progress)

    async def remember(self, *, tenant_id: str, key: str, compute: Any) -> Any:
        """The value computed by the first attempt for ``key`` (later attempts reuse it).

        Relative writes (increment, add days) must send the CRM the same request on a retry,
        or the CRM's idempotency check would see a different request under the same key.
        """
        stored = await self.completed_effect(key=f"{key}#intent")
        if stored is not None:
            return stored.get("value")
        value = await compute()
        await self.store_effect(tenant_id=tenant_id, key=f"{key}#intent", result={"value": value})
        stored = await self.completed_effect(key=f"{key}#intent")  # a racing attempt may have won
        return (stored or {}).get("value", value)

    # -- notifications ---------------------------------------------------------------------
    async def add_notification(
        self,
        *,
        tenant_id: str,
        user_id: str,
        title: str,
        body: str,
        link: str,
        workflow_id: str,
        object_type: str,
        record_id: str,
        key: str,
    ) -> str:
        nid = uuid.uuid5(uuid.NAMESPACE_URL, f"{key}#{user_id}").hex
        async with self._sessions() as s, s.begin():
            if await s.get(Notification, nid) is None:
                s.add(
                    Notification(
                        notification_id=nid,
                        tenant_id=tenant_id,
                        user_id=user_id,
                        title=title,
                        body=body,
                        link=link,
                        workflow_id=workflow_id,
                        object_type=object_type,
                        record_id=record_id,
                        idempotency_key=f"{key}#{user_id}",
                        created_at=datetime.now(UTC),
                    )
                )
        return nid

    async def list_notifications(
        self, *, tenant_id: str, user_id: str, offset: int = 0, limit: int = 50
    ) -> tuple[list[Notification], int | None]:
        q = (
            select(Notification)
            .where(Notification.tenant_id == tenant_id, Notification.user_id == user_id)
            .order_by(Notification.created_at.desc(), Notification.notification_id)  # type: ignore[attr-defined]
        )
        async with self._sessions() as s:
            rows = list((await s.exec(q.offset(offset).limit(limit + 1))).all())
        return rows[:limit], (offset + limit if len(rows) > limit else None)

    # -- round robin ------------------------------------------------------------------------
    async def rotate(
        self, *, tenant_id: str, rotation_key: str, candidates: Sequence[str], key: str
    ) -> str:
        """The next owner in turn; the same answer for the same idempotency key."""
        async with self._sessions() as s, s.begin():
            done = await s.get(RotationAssignment, key)
            if done is not None:
                return done.owner_id
            counter = await s.get(RotationCounter, (tenant_id, rotation_key), with_for_update=True)
            if counter is None:
                counter = RotationCounter(tenant_id=tenant_id, rotation_key=rotation_key)
                s.add(counter)
            owner = candidates[counter.next_index % len(candidates)]
            counter.next_index = (counter.next_index + 1) % len(candidates)
            s.add(
                RotationAssignment(
                    idempotency_key=key,
                    tenant_id=tenant_id,
                    owner_id=owner,
                    created_at=datetime.now(UTC),
                )
            )
            return owner

    # -- retention --------------------------------------------------------------------------
    async def prune(self, *, now: datetime | None = None, keep: timedelta = RETENTION) -> int:
        """Drop action logs (and bookkeeping) older than the retention; returns rows removed."""
        cutoff = (now or datetime.now(UTC)) - keep
        removed = 0
        async with self._sessions() as s, s.begin():
            for stmt in (
                delete(ActionLog).where(ActionLog.created_at < cutoff),  # type: ignore[arg-type]
                delete(AttemptError).where(AttemptError.at < cutoff),  # type: ignore[arg-type]
                delete(SideEffect).where(SideEffect.created_at < cutoff),  # type: ignore[arg-type]
                delete(RotationAssignment).where(RotationAssignment.created_at < cutoff),  # type: ignore[arg-type]
                delete(Notification).where(Notification.created_at < cutoff),  # type: ignore[arg-type]
                delete(EnrollmentRun).where(EnrollmentRun.ended_at < cutoff),  # type: ignore[arg-type,operator]
            ):
                res = await (await s.connection()).execute(stmt)
                removed += res.rowcount or 0  # type: ignore[attr-defined]
        return removed


# -- batch writers (SQLAlchemy Core: executemany, no per-row ORM work) ----------------------
_RUNS = EnrollmentRun.__table__  # type: ignore[attr-defined]
_LOG = ActionLog.__table__  # type: ignore[attr-defined]
_EFFECTS = SideEffect.__table__  # type: ignore[attr-defined]


async def _insert_effects(conn: AsyncConnection, items: list[tuple[str, str, Any]]) -> None:
    """Completed side effects; the first stored result for a key wins (earlier attempts)."""
    keys = list(dict.fromkeys(key for _, key, _ in items))
    stored = set(
        (
            await conn.execute(
                select(_EFFECTS.c.idempotency_key).where(_EFFECTS.c.idempotency_key.in_(keys))
            )
        ).scalars()
    )
    now = datetime.now(UTC)
    rows = []
    for tenant_id, key, result in items:
        if key not in stored:
            stored.add(key)
            rows.append(
                {
                    "idempotency_key": key,
                    "tenant_id": tenant_id,
                    "result": result,
                    "created_at": now,
                }
            )
    if rows:
        await conn.execute(insert(_EFFECTS), rows)


async def _apply_progress(conn: AsyncConnection, items: list[RunProgress]) -> None:
    """Run rows (insert or update, applied in order) and action-log rows, one per
    (run, action, visit): local activities may run twice (a lost marker)."""
    run_ids = list(dict.fromkeys(p.run_workflow_id for p in items))
    tenants = list(dict.fromkeys(p.tenant_id for p in items))
    existing = {
        (t, r)
        for t, r in await conn.execute(
            select(_RUNS.c.tenant_id, _RUNS.c.run_workflow_id).where(
                _RUNS.c.run_workflow_id.in_(run_ids), _RUNS.c.tenant_id.in_(tenants)
            )
        )
    }
    runs: dict[tuple[str, str], dict[str, Any]] = {}
    for p in items:
        row = runs.setdefault(
            (p.tenant_id, p.run_workflow_id),
            {
                "tenant_id": p.tenant_id,
                "run_workflow_id": p.run_workflow_id,
                "workflow_id": p.workflow_id,
                "revision": p.revision,
                "object_type": p.object_type,
                "record_id": p.record_id,
                "enrollment_number": p.enrollment_number,
                "enrolled_at": p.enrolled_at,
                "current_step": "",
                "reason": "",
                "ended_at": None,
            },
        )
        row.update(status=p.status, current_step=p.current_step, updated_at=p.at)
        if p.status != "running":
            row.update(reason=p.reason, ended_at=p.at)
    new = [row for key, row in runs.items() if key not in existing]
    if new:
        await conn.execute(insert(_RUNS), new)
    for ended in (False, True):
        cols = ["status", "current_step", "updated_at"] + (["reason", "ended_at"] if ended else [])
        rows = [
            {"k_tenant": row["tenant_id"], "k_run": row["run_workflow_id"]}
            | {c: row[c] for c in cols}
            for key, row in runs.items()
            if key in existing and (row["status"] != "running") == ended
        ]
        if rows:
            await conn.execute(
                update(_RUNS)
                .where(
                    _RUNS.c.tenant_id == bindparam("k_tenant"),
                    _RUNS.c.run_workflow_id == bindparam("k_run"),
                )
                .values({c: bindparam(c) for c in cols}),
                rows,
            )
    outcomes = [(p, o) for p in items for o in p.outcomes]
    if not outcomes:
        return
    logged = {
        (t, r, a, v)
        for t, r, a, v in await conn.execute(
            select(_LOG.c.tenant_id, _LOG.c.run_workflow_id, _LOG.c.action_id, _LOG.c.visit).where(
                _LOG.c.run_workflow_id.in_(run_ids), _LOG.c.tenant_id.in_(tenants)
            )
        )
    }
    # A failed action reports no attempt count of its own: the failed attempts recorded it.
    failed_keys = [
        o.idempotency_key for _, o in outcomes if o.status == "failed" and not o.attempts
    ]
    tried: dict[str, int] = {}
    if failed_keys:
        tried = {
            k: int(n or 0)
            for k, n in await conn.execute(
                select(AttemptError.idempotency_key, func.max(AttemptError.attempt))
                .where(AttemptError.idempotency_key.in_(failed_keys))  # type: ignore[attr-defined]
                .group_by(AttemptError.idempotency_key)
            )
        }
    rows = []
    for p, o in outcomes:
        key = (p.tenant_id, p.run_workflow_id, o.action_id, o.visit)
        if key in logged:
            continue
        logged.add(key)
        attempts = o.attempts or (tried.get(o.idempotency_key, 0) if o.status == "failed" else 0)
        rows.append(
            {
                "tenant_id": p.tenant_id,
                "run_workflow_id": p.run_workflow_id,
                "action_id": o.action_id,
                "action_type": o.action_type,
                "visit": o.visit,
                "status": o.status,
                "reason": o.reason,
                "attempts": max(attempts, 1),
                "started_at": o.started_at,
                "finished_at": o.finished_at,
                "outputs": o.outputs,
                "idempotency_key": o.idempotency_key,
                "created_at": o.finished_at or p.at,
            }
        )
    if rows:
        await conn.execute(insert(_LOG), rows)
