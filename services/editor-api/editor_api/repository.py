"""Keyword-only data access for editor-api. Every function takes the session and the tenant id.

The one rule that matters: a draft is only ever written by ``save_draft``, whose UPDATE is
conditional on the revision it was read at, so two concurrent edits cannot both win even when
they interleave between read and write (the loser gets ``Aborted``).
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from crmflow.errors import Aborted, InvalidArgument, NotFound
from editor_api.db import (
    AuditRow,
    ChangeRow,
    HandoffRow,
    PublishedRevisionRow,
    TenantPlanRow,
    WorkflowRow,
    utcnow,
)

UNDO_WINDOW = timedelta(days=30)


async def get_workflow(
    session: AsyncSession, *, tenant_id: str, workflow_id: str, for_update: bool = False
) -> WorkflowRow:
    stmt = select(WorkflowRow).where(
        WorkflowRow.tenant_id == tenant_id, WorkflowRow.workflow_id == workflow_id
    )
    if for_update:
        stmt = stmt.with_for_update()
    row = (await session.exec(stmt)).first()
    if row is None:
        raise NotFound("workflow", workflow_id)
    return row


async def count_workflows(session: AsyncSession, *, tenant_id: str, exclude_status: str) -> int:
    stmt = (
        select(func.count())
        .select_from(WorkflowRow)
        .where(WorkflowRow.tenant_id == tenant_id, WorkflowRow.status != exclude_status)
    )
    return int((await session.exec(stmt)).one())


async def workflow_object_types(
    session: AsyncSession, *, tenant_id: str, workflow_ids: set[str]
) -> dict[str, str]:
    """The object type each of these workflows enrolls, for those that exist."""
    if not workflow_ids:
        return {}
    stmt = select(WorkflowRow.workflow_id, WorkflowRow.object_type).where(
        WorkflowRow.tenant_id == tenant_id, col(WorkflowRow.workflow_id).in_(sorted(workflow_ids))
    )
    return {wid: ot for wid, ot in (await session.exec(stmt)).all()}


def _token(pk: int) -> str:
    return base64.urlsafe_b64encode(str(pk).encode()).decode()


def _untoken(token: str) -> int:
    try:
        return int(base64.urlsafe_b64decode(token.encode()).decode())
    except ValueError:
        raise InvalidArgument.field("page_token", "not a token this service issued") from None


async def list_workflows(
    session: AsyncSession,
    *,
    tenant_id: str,
    object_type: str = "",
    status: str = "",
    folder: str = "",
    text: str = "",
    include_status: str = "",
    exclude_status: str = "",
    page_size: int = 50,
    page_token: str = "",
) -> tuple[list[WorkflowRow], str]:
    """Keyset paging on the insertion order (stable under concurrent inserts)."""
    stmt = select(WorkflowRow).where(WorkflowRow.tenant_id == tenant_id)
    if object_type:
        stmt = stmt.where(WorkflowRow.object_type == object_type)
    if status:
        stmt = stmt.where(WorkflowRow.status == status)
    elif exclude_status:
        stmt = stmt.where(WorkflowRow.status != exclude_status)
    if folder:
        stmt = stmt.where(WorkflowRow.folder == folder)
    if text:
        like = f"%{text.lower()}%"
        stmt = stmt.where(
            or_(
                func.lower(WorkflowRow.name).like(like),
                func.lower(WorkflowRow.description).like(like),
            )
        )
    if page_token:
        stmt = stmt.where(col(WorkflowRow.pk) > _untoken(page_token))
    stmt = stmt.order_by(col(WorkflowRow.pk)).limit(page_size + 1)
    rows = list((await session.exec(stmt)).all())
    nxt = ""
    if len(rows) > page_size:
        rows = rows[:page_size]
        assert rows[-1].pk is not None
        nxt = _token(rows[-1].pk)
    return rows, nxt


async def save_draft(
    session: AsyncSession, *, row: WorkflowRow, draft: str, values: dict[str, object], now: datetime
) -> int:
    """Write a new draft if nobody else did since ``row`` was read; returns the new revision."""
    new_rev = row.draft_revision + 1
    result = await session.exec(  # type: ignore[call-overload]
        update(WorkflowRow)
        .where(
            col(WorkflowRow.pk) == row.pk,
            col(WorkflowRow.draft_revision) == row.draft_revision,
        )
        .values(draft=draft, draft_revision=new_rev, updated_at=now, **values)
    )
    if result.rowcount != 1:
        raise Aborted(
            f"workflow {row.workflow_id} was changed concurrently (revision {row.draft_revision} "
            "is stale); re-read it and apply the edit again"
        )
    row.draft = draft
    row.draft_revision = new_rev
    row.updated_at = now
    for k, v in values.items():
        setattr(row, k, v)
    return new_rev


async def set_status(
    session: AsyncSession, *, row: WorkflowRow, values: dict[str, object], now: datetime
) -> None:
    """Status changes (publish, on/off, archive) are guarded by the draft revision too."""
    result = await session.exec(  # type: ignore[call-overload]
        update(WorkflowRow)
        .where(
            col(WorkflowRow.pk) == row.pk,
            col(WorkflowRow.draft_revision) == row.draft_revision,
            col(WorkflowRow.status) == row.status,
            col(WorkflowRow.published_revision) == row.published_revision,
        )
        .values(updated_at=now, **values)
    )
    if result.rowcount != 1:
        raise Aborted(f"workflow {row.workflow_id} was changed concurrently; re-read it")
    row.updated_at = now
    for k, v in values.items():
        setattr(row, k, v)


async def record_change(
    session: AsyncSession,
    *,
    tenant_id: str,
    workflow_id: str,
    operation: str,
    actor: str,
    before: str,
    after: str,
    irreversible_reason: str,
    now: datetime,
) -> None:
    """Log a change for undo; a new change empties the redo stack and prunes old entries."""
    await session.exec(  # type: ignore[call-overload]
        delete(ChangeRow).where(
            col(ChangeRow.tenant_id) == tenant_id,
            col(ChangeRow.workflow_id) == workflow_id,
            or_(col(ChangeRow.undone).is_(True), col(ChangeRow.created_at) < now - UNDO_WINDOW),
        )
    )
    session.add(
        ChangeRow(
            tenant_id=tenant_id,
            workflow_id=workflow_id,
            operation=operation,
            actor=actor,
            before=before,
            after=after,
            irreversible_reason=irreversible_reason,
            created_at=now,
        )
    )


async def last_change(
    session: AsyncSession, *, tenant_id: str, workflow_id: str, undone: bool, now: datetime
) -> ChangeRow | None:
    """Undo takes the newest change still applied; redo the oldest undone one (a stack)."""
    stmt = select(ChangeRow).where(
        ChangeRow.tenant_id == tenant_id,
        ChangeRow.workflow_id == workflow_id,
        ChangeRow.undone == undone,
        col(ChangeRow.created_at) >= now - UNDO_WINDOW,
    )
    stmt = stmt.order_by(col(ChangeRow.pk) if undone else col(ChangeRow.pk).desc()).limit(1)
    return (await session.exec(stmt)).first()


async def change_counts(
    session: AsyncSession, *, tenant_id: str, workflow_id: str, now: datetime
) -> tuple[int, int]:
    stmt = (
        select(ChangeRow.undone, func.count())
        .where(
            ChangeRow.tenant_id == tenant_id,
            ChangeRow.workflow_id == workflow_id,
            col(ChangeRow.created_at) >= now - UNDO_WINDOW,
        )
        .group_by(col(ChangeRow.undone))
    )
    counts = {bool(u): int(n) for u, n in (await session.exec(stmt)).all()}
    return counts.get(False, 0), counts.get(True, 0)


async def audit(
    session: AsyncSession,
    *,
    tenant_id: str,
    workflow_id: str,
    actor: str,
    operation: str,
    summary: str,
    draft_revision: int,
    now: datetime,
) -> None:
    session.add(
        AuditRow(
            tenant_id=tenant_id,
            workflow_id=workflow_id,
            actor=actor,
            operation=operation,
            summary=summary,
            draft_revision=draft_revision,
            at=now,
        )
    )


async def list_audit(
    session: AsyncSession, *, tenant_id: str, workflow_id: str, page_size: int, page_token: str
) -> tuple[list[AuditRow], str]:
    stmt = select(AuditRow).where(
        AuditRow.tenant_id == tenant_id, AuditRow.workflow_id == workflow_id
    )
    if page_token:
        stmt = stmt.where(col(AuditRow.pk) < _untoken(page_token))
    stmt = stmt.order_by(col(AuditRow.pk).desc()).limit(page_size + 1)
    rows = list((await session.exec(stmt)).all())
    nxt = ""
    if len(rows) > page_size:
        rows = rows[:page_size]
        assert rows[-1].pk is not None
        nxt = _token(rows[-1].pk)
    return rows, nxt


async def add_revision(session: AsyncSession, *, row: PublishedRevisionRow) -> None:
    session.add(row)


async def get_revision(
    session: AsyncSession, *, tenant_id: str, workflow_id: str, revision: int
) -> PublishedRevisionRow:
    got = await session.get(PublishedRevisionRow, (tenant_id, workflow_id, revision))
    if got is None:
        raise NotFound("revision", f"{workflow_id}@{revision}")
    return got


async def list_revisions(
    session: AsyncSession, *, tenant_id: str, workflow_id: str
) -> list[PublishedRevisionRow]:
    stmt = (
        select(PublishedRevisionRow)
        .where(
            PublishedRevisionRow.tenant_id == tenant_id,
            PublishedRevisionRow.workflow_id == workflow_id,
        )
        .order_by(col(PublishedRevisionRow.revision).desc())
    )
    return list((await session.exec(stmt)).all())


async def delete_workflow(session: AsyncSession, *, row: WorkflowRow) -> None:
    for table in (ChangeRow, HandoffRow):
        await session.exec(  # type: ignore[call-overload]
            delete(table).where(
                col(table.tenant_id) == row.tenant_id, col(table.workflow_id) == row.workflow_id
            )
        )
    await session.delete(row)


async def get_plan(session: AsyncSession, *, tenant_id: str) -> TenantPlanRow | None:
    return await session.get(TenantPlanRow, tenant_id)


async def put_plan(session: AsyncSession, *, plan: TenantPlanRow) -> None:
    await session.merge(plan)


async def get_handoff(
    session: AsyncSession, *, tenant_id: str, workflow_id: str
) -> HandoffRow | None:
    return await session.get(HandoffRow, (tenant_id, workflow_id))


def dumps_list(values: list[str]) -> str:
    return json.dumps(sorted(set(values)))


def now_utc() -> datetime:
    return utcnow()
