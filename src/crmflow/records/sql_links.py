"""The embedded store's relations: associations (with labels) and static lists.

Associations are symmetric: one call writes both directions (see tables) and emits one change
event per side, so a workflow on either object type sees it. Re-adding an existing association
or removing a missing one is a no-op without an event (safe to retry).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from crmflow.errors import InvalidArgument, NotFound
from crmflow.model.records import ChangeEvent, ChangeEventType
from crmflow.records.port import (
    Association,
    StaticList,
    check_page_limit,
)
from crmflow.records.sql_base import R, SqlBase, check_id, new_id, record_not_found
from crmflow.records.tables import (
    CrmAssociation,
    CrmList,
    CrmListMember,
    CrmOutbox,
    CrmOwner,
    CrmSubscription,
)

A = CrmAssociation.__table__  # type: ignore[attr-defined]
L = CrmList.__table__  # type: ignore[attr-defined]
LM = CrmListMember.__table__  # type: ignore[attr-defined]
OW = CrmOwner.__table__  # type: ignore[attr-defined]
SUB = CrmSubscription.__table__  # type: ignore[attr-defined]
OUT = CrmOutbox.__table__  # type: ignore[attr-defined]
LABEL_MAX = 64


def _links(by_label: bool) -> Any:
    """One statement for list_associations: the record (no row: NotFound) left-joined to its
    associations of a type, so a missing record and "no associations" cost one read."""
    on = [
        A.c.tenant_id == R.c.tenant_id,
        A.c.from_type == R.c.object_type,
        A.c.from_id == R.c.record_id,
        A.c.to_type == sa.bindparam("to"),
    ]
    if by_label:
        on.append(A.c.label == sa.bindparam("lb"))
    return (
        sa.select(A.c.from_type, A.c.from_id, A.c.to_type, A.c.to_id, A.c.label)
        .select_from(R.outerjoin(A, sa.and_(*on)))
        .where(
            R.c.tenant_id == sa.bindparam("t"),
            R.c.object_type == sa.bindparam("ot"),
            R.c.record_id == sa.bindparam("rid"),
        )
        .order_by(A.c.created_at, A.c.to_id, A.c.label)
    )


def _page(by_label: bool) -> Any:
    """list_associations paged (keyset on the associated record id): the first ``n`` associated
    record ids after ``after`` (a range scan of the primary key, or of ix_crm_association_label
    with a label, in id order), then all their rows; left-joined to the record like ``_links``."""
    mine = [
        A.c.tenant_id == sa.bindparam("t"),
        A.c.from_type == sa.bindparam("ot"),
        A.c.from_id == sa.bindparam("rid"),
        A.c.to_type == sa.bindparam("to"),
    ]
    if by_label:
        mine.append(A.c.label == sa.bindparam("lb"))
    ids = (
        sa.select(A.c.to_id)
        .where(*mine, A.c.to_id > sa.bindparam("after"))
        .group_by(A.c.to_id)
        .order_by(A.c.to_id)
        .limit(sa.bindparam("n", type_=sa.Integer))
    )
    page = sa.select(A).where(*mine, A.c.to_id.in_(ids)).subquery("page")
    return (
        sa.select(page.c.from_type, page.c.from_id, page.c.to_type, page.c.to_id, page.c.label)
        .select_from(R.outerjoin(page, sa.true()))
        .where(
            R.c.tenant_id == sa.bindparam("t"),
            R.c.object_type == sa.bindparam("ot"),
            R.c.record_id == sa.bindparam("rid"),
        )
        .order_by(page.c.to_id, page.c.label)
    )


_LINKS = _links(False)
_LINKS_BY_LABEL = _links(True)
_PAGE = _page(False)
_PAGE_BY_LABEL = _page(True)
# "No limit" with an ``after``: every association after it, still in id order.
_NO_LIMIT = 2**31 - 1


class LinksMixin(SqlBase):
    # Helpers used by record writes and search ------------------------------------------
    async def linked_ids(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        object_type: str,
        record_id: str,
        to_type: str,
        label: str = "",
    ) -> list[str]:
        q = (
            sa.select(A.c.to_id)
            .where(
                A.c.tenant_id == tenant_id,
                A.c.from_type == object_type,
                A.c.from_id == record_id,
                A.c.to_type == to_type,
                *([A.c.label == label] if label else []),
            )
            .order_by(A.c.created_at, A.c.to_id)
        )
        return list(dict.fromkeys(r.to_id for r in await conn.execute(q)))

    async def links_of(
        self, conn: AsyncConnection, tenant_id: str, object_type: str, record_id: str
    ) -> list[tuple[str, str, str]]:
        """(type, id, label) of every association of a record, in the order they were made."""
        q = (
            sa.select(A.c.to_type, A.c.to_id, A.c.label)
            .where(
                A.c.tenant_id == tenant_id,
                A.c.from_type == object_type,
                A.c.from_id == record_id,
            )
            .order_by(A.c.created_at, A.c.to_type, A.c.to_id, A.c.label)
        )
        return [(r.to_type, r.to_id, r.label) for r in await conn.execute(q)]

    async def forget_links(
        self, conn: AsyncConnection, tenant_id: str, object_type: str, record_id: str
    ) -> None:
        await conn.execute(
            A.delete().where(
                A.c.tenant_id == tenant_id,
                sa.or_(
                    sa.and_(A.c.from_type == object_type, A.c.from_id == record_id),
                    sa.and_(A.c.to_type == object_type, A.c.to_id == record_id),
                ),
            )
        )
        lists = sa.select(L.c.list_id).where(
            L.c.tenant_id == tenant_id, L.c.object_type == object_type
        )
        await conn.execute(
            LM.delete().where(
                LM.c.tenant_id == tenant_id, LM.c.record_id == record_id, LM.c.list_id.in_(lists)
            )
        )
        if object_type == "contact":
            await conn.execute(
                SUB.delete().where(SUB.c.tenant_id == tenant_id, SUB.c.contact_id == record_id)
            )

    # Associations ---------------------------------------------------------------------
    async def list_associations(
        self,
        tenant_id: str,
        object_type: str,
        record_id: str,
        to_object_type: str,
        *,
        label: str = "",
        limit: int | None = None,
        after: str = "",
    ) -> list[Association]:
        check_id(tenant_id, "tenant_id", "tenant id")
        check_page_limit(limit)
        for found in (await self.schemas(tenant_id, [object_type, to_object_type])).values():
            if isinstance(found, NotFound):
                raise found
        params: dict[str, Any] = {
            "t": tenant_id,
            "ot": object_type,
            "rid": record_id,
            "to": to_object_type,
            "lb": label,
        }
        if limit is None and not after:
            stmt = _LINKS_BY_LABEL if label else _LINKS
        else:
            stmt = _PAGE_BY_LABEL if label else _PAGE
            params |= {"after": after, "n": min(limit or _NO_LIMIT, _NO_LIMIT)}
        rows = await self.read_rows(stmt, params)
        if not rows:
            raise record_not_found(object_type, record_id)
        return [
            Association(
                from_object_type=r.from_type,
                from_record_id=r.from_id,
                to_object_type=r.to_type,
                to_record_id=r.to_id,
                label=r.label,
            )
            for r in rows
            if r.to_id is not None
        ]

    async def _check_association(
        self, conn: AsyncConnection, tenant_id: str, a: Association
    ) -> None:
        if len(a.label) > LABEL_MAX:
            raise InvalidArgument.field("association.label", f"at most {LABEL_MAX} characters")
        await self.schema(conn, tenant_id, a.from_object_type)
        await self.schema(conn, tenant_id, a.to_object_type)
        await self.require(conn, tenant_id, a.from_object_type, a.from_record_id)
        await self.require(conn, tenant_id, a.to_object_type, a.to_record_id)
        if (a.from_object_type, a.from_record_id) == (a.to_object_type, a.to_record_id):
            raise InvalidArgument.field("association", "a record cannot be associated to itself")

    def _rows(self, tenant_id: str, a: Association) -> list[dict[str, Any]]:
        return [
            {
                "tenant_id": tenant_id,
                "from_type": f_t,
                "from_id": f_i,
                "to_type": t_t,
                "to_id": t_i,
                "label": a.label,
            }
            for f_t, f_i, t_t, t_i in (
                (a.from_object_type, a.from_record_id, a.to_object_type, a.to_record_id),
                (a.to_object_type, a.to_record_id, a.from_object_type, a.from_record_id),
            )
        ]

    def _assoc_events(
        self, tenant_id: str, a: Association, kind: ChangeEventType
    ) -> list[ChangeEvent]:
        return [
            self.event(
                tenant_id,
                kind,
                r["from_type"],
                r["from_id"],
                associated_object_type=r["to_type"],
                associated_record_id=r["to_id"],
                association_label=a.label,
            )
            for r in self._rows(tenant_id, a)
        ]

    def _match(self, row: dict[str, Any]) -> Any:
        return sa.and_(*[A.c[k] == v for k, v in row.items()])

    async def associate(self, tenant_id: str, association: Association) -> None:
        check_id(tenant_id, "tenant_id", "tenant id")
        async with self.write() as conn:
            await self._check_association(conn, tenant_id, association)
            rows = self._rows(tenant_id, association)
            if (await conn.execute(sa.select(A.c.to_id).where(self._match(rows[0])))).first():
                return
            now = self.now()
            await conn.execute(A.insert(), [{**r, "created_at": now} for r in rows])
            await self.emit(
                conn, self._assoc_events(tenant_id, association, ChangeEventType.ASSOCIATION_ADDED)
            )

    async def unassociate(self, tenant_id: str, association: Association) -> None:
        check_id(tenant_id, "tenant_id", "tenant id")
        async with self.write() as conn:
            await self._check_association(conn, tenant_id, association)
            rows = self._rows(tenant_id, association)
            done = await conn.execute(A.delete().where(sa.or_(*[self._match(r) for r in rows])))
            if done.rowcount:
                await self.emit(
                    conn,
                    self._assoc_events(tenant_id, association, ChangeEventType.ASSOCIATION_REMOVED),
                )

    # Lists ------------------------------------------------------------------------------
    @staticmethod
    def _list(row: Any) -> StaticList:
        return StaticList(list_id=row.list_id, name=row.name, object_type=row.object_type)

    async def create_list(self, tenant_id: str, name: str, object_type: str) -> StaticList:
        check_id(tenant_id, "tenant_id", "tenant id")
        if not name.strip() or len(name) > 200:
            raise InvalidArgument.field("name", "a list needs a name (at most 200 characters)")
        async with self.write() as conn:
            await self.schema(conn, tenant_id, object_type)
            lst = StaticList(list_id=new_id(), name=name.strip(), object_type=object_type)
            await conn.execute(
                L.insert().values(tenant_id=tenant_id, created_at=self.now(), **lst.model_dump())
            )
            return lst

    async def _get_list(self, conn: AsyncConnection, tenant_id: str, list_id: str) -> Any:
        row = (
            await conn.execute(
                sa.select(L).where(L.c.tenant_id == tenant_id, L.c.list_id == list_id)
            )
        ).first()
        if row is None:
            raise NotFound("list", list_id)
        return row

    async def get_list(self, tenant_id: str, list_id: str) -> StaticList:
        check_id(tenant_id, "tenant_id", "tenant id")
        async with self.read() as conn:
            return self._list(await self._get_list(conn, tenant_id, list_id))

    async def list_lists(self, tenant_id: str, object_type: str = "") -> list[StaticList]:
        check_id(tenant_id, "tenant_id", "tenant id")
        async with self.read() as conn:
            q = sa.select(L).where(
                L.c.tenant_id == tenant_id,
                *([L.c.object_type == object_type] if object_type else []),
            )
            return [self._list(r) for r in await conn.execute(q.order_by(L.c.name, L.c.list_id))]

    async def _membership(
        self, tenant_id: str, list_id: str, record_ids: Sequence[str], add: bool
    ) -> None:
        check_id(tenant_id, "tenant_id", "tenant id")
        if len(record_ids) > 1000:
            raise InvalidArgument.field("record_ids", "at most 1000 ids per call")
        async with self.write() as conn:
            lst = await self._get_list(conn, tenant_id, list_id)
            found = await self.fetch(conn, tenant_id, lst.object_type, record_ids)
            for rid in record_ids:
                if rid not in found:
                    raise record_not_found(lst.object_type, rid)
            present = {
                r.record_id
                for r in await conn.execute(
                    sa.select(LM.c.record_id).where(
                        LM.c.tenant_id == tenant_id,
                        LM.c.list_id == list_id,
                        LM.c.record_id.in_(list(found)),
                    )
                )
            }
            ids = [i for i in dict.fromkeys(record_ids) if (i in present) != add]
            if not ids:
                return
            if add:
                now = self.now()
                await conn.execute(
                    LM.insert(),
                    [
                        {
                            "tenant_id": tenant_id,
                            "list_id": list_id,
                            "record_id": i,
                            "added_at": now,
                        }
                        for i in ids
                    ],
                )
            else:
                await conn.execute(
                    LM.delete().where(
                        LM.c.tenant_id == tenant_id,
                        LM.c.list_id == list_id,
                        LM.c.record_id.in_(ids),
                    )
                )
            kind = (
                ChangeEventType.LIST_MEMBERSHIP_ADDED
                if add
                else ChangeEventType.LIST_MEMBERSHIP_REMOVED
            )
            await self.emit(
                conn,
                [self.event(tenant_id, kind, lst.object_type, i, list_id=list_id) for i in ids],
            )

    async def add_to_list(self, tenant_id: str, list_id: str, record_ids: Sequence[str]) -> None:
        await self._membership(tenant_id, list_id, record_ids, True)

    async def remove_from_list(
        self, tenant_id: str, list_id: str, record_ids: Sequence[str]
    ) -> None:
        await self._membership(tenant_id, list_id, record_ids, False)

    async def list_members(self, tenant_id: str, list_id: str) -> list[str]:
        check_id(tenant_id, "tenant_id", "tenant id")
        async with self.read() as conn:
            await self._get_list(conn, tenant_id, list_id)
            q = sa.select(LM.c.record_id).where(
                LM.c.tenant_id == tenant_id, LM.c.list_id == list_id
            )
            return [
                r.record_id for r in await conn.execute(q.order_by(LM.c.added_at, LM.c.record_id))
            ]

    async def is_member(self, tenant_id: str, list_id: str, record_id: str) -> bool:
        check_id(tenant_id, "tenant_id", "tenant id")
        async with self.read() as conn:
            await self._get_list(conn, tenant_id, list_id)
            row = (
                await conn.execute(
                    sa.select(LM.c.record_id).where(
                        LM.c.tenant_id == tenant_id,
                        LM.c.list_id == list_id,
                        LM.c.record_id == record_id,
                    )
                )
            ).first()
            return row is not None
