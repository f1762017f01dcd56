"""Search and count for the embedded store: FilterGroup -> SQL (see ``sql_filters``), paging
by an opaque offset cursor, sorting by creation or any property, and the plan choice SQLite
needs (below). Operators without a SQL form fall back to ``crmflow.criteria`` in Python.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import operators
from sqlalchemy.sql.expression import UnaryExpression

from crmflow.criteria import compile_group
from crmflow.criteria.values import as_datetime, as_number, as_text
from crmflow.errors import InvalidArgument
from crmflow.model.criteria import FilterGroup
from crmflow.model.records import Record
from crmflow.records.port import PropertyType, SearchPage
from crmflow.records.schema import Schema
from crmflow.records.sql_base import VAL, R, check_tenant
from crmflow.records.sql_filters import Translator, needs_python, refuse_enrollment_filters
from crmflow.records.sql_links import LinksMixin

MAX_PAGE = 1000


def _cursor(cursor: str) -> int:
    if not cursor:
        return 0
    try:
        kind, _, n = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        if kind != "o" or int(n) < 0:
            raise ValueError
        return int(n)
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument.field("cursor", "not a cursor returned by search") from None


class SearchMixin(LinksMixin):
    async def _where(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        object_type: str,
        criteria: FilterGroup,
        rid: Any = R.c.record_id,
    ) -> Any:
        translator = await self._translator(conn, tenant_id, object_type, criteria)
        return translator.group(criteria, object_type, rid, "criteria")

    async def _translator(
        self, conn: AsyncConnection, tenant_id: str, object_type: str, criteria: FilterGroup
    ) -> Translator:
        schemas = {object_type: await self.schema(conn, tenant_id, object_type)}
        for ot in _scope_types(criteria):
            schemas[ot] = await self.schema(conn, tenant_id, ot)
        return Translator(tenant_id, schemas, self.now())

    async def _count_matches(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        object_type: str,
        criteria: FilterGroup | None,
        base: list[Any],
    ) -> int:
        """The count; one positive filter is counted on the value index alone (its rows exist
        exactly for live records), which skips a primary-key probe per match."""
        if criteria is not None:
            translator = await self._translator(conn, tenant_id, object_type, criteria)
            ids = translator.single_id_set(criteria, object_type, "criteria")
            if ids is not None:
                sub = ids.subquery()
                q = sa.select(sa.func.count(sa.distinct(sub.c.record_id)))
                return int((await conn.execute(q)).scalar_one())
        return await self._count(conn, base)

    def _order(self, schema: Schema, sort: str, *, noindex: bool = False) -> list[Any]:
        desc = sort.startswith("-")
        name = sort.lstrip("-")
        wrap = _noindex if noindex else (lambda c: c)
        if not name:
            key: Any = wrap(R.c.created_at)
        elif name in ("createdate", "lastmodifieddate"):
            key = wrap(R.c.created_at if name == "createdate" else R.c.updated_at)
        else:
            prop = schema.get(name, "sort")
            col = (
                VAL.c.value_num
                if prop.type in (PropertyType.NUMBER, PropertyType.DATE, PropertyType.DATETIME)
                else VAL.c.value_text
            )
            key = (
                sa.select(sa.func.min(col))
                .where(
                    VAL.c.tenant_id == R.c.tenant_id,
                    VAL.c.object_type == R.c.object_type,
                    VAL.c.property == name,
                    VAL.c.record_id == R.c.record_id,
                )
                .scalar_subquery()
            )
        key = sa.nulls_last(key.desc() if desc else key.asc())
        rid = wrap(R.c.record_id)
        return [key, rid.desc() if desc else rid.asc()]

    async def search(
        self,
        tenant_id: str,
        object_type: str,
        criteria: FilterGroup | None = None,
        *,
        limit: int = 100,
        cursor: str = "",
        sort: str = "",
    ) -> SearchPage:
        check_tenant(tenant_id)
        if criteria is not None:
            refuse_enrollment_filters(criteria)
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidArgument.field("limit", f"must be between 1 and {MAX_PAGE}")
        offset = _cursor(cursor)
        async with self.read() as conn:
            schema = await self.schema(conn, tenant_id, object_type)
            order = self._order(schema, sort)
            if criteria is not None and needs_python(criteria):
                matched = await self._python_matches(conn, tenant_id, object_type, criteria)
                if sort:
                    matched = _python_sort(matched, schema, sort)
                page = matched[offset : offset + limit]
                return SearchPage(
                    records=page,
                    total=len(matched),
                    next_cursor=_next(offset, limit, len(matched)),
                )
            base = await self._base(conn, tenant_id, object_type, criteria)
            n = await self._count_matches(conn, tenant_id, object_type, criteria, base)
            if self.sqlite and criteria is not None:
                by_creation = sort.lstrip("-") in ("", "createdate")
                if by_creation and await self._walk(
                    conn, tenant_id, object_type, n, offset + limit
                ):
                    # walk records in creation order, testing the matches' id set
                    rid = _noindex(R.c.record_id)
                    base = await self._base(conn, tenant_id, object_type, criteria, rid)
                else:  # look the matches up by primary key, then sort them
                    order = self._order(schema, sort, noindex=True)
            q = sa.select(R).where(*base).order_by(*order).offset(offset).limit(limit)
            rows = (await conn.execute(q)).all()
        return SearchPage(
            records=[self.to_record(r) for r in rows], total=n, next_cursor=_next(offset, limit, n)
        )

    async def _walk(
        self, conn: AsyncConnection, tenant_id: str, object_type: str, matches: int, needed: int
    ) -> bool:
        """Whether walking by creation beats looking the matches up (SQLite only)."""
        size = await self._size(conn, tenant_id, object_type)
        return matches * matches * WALK_COST_RATIO > size * needed

    async def _size(self, conn: AsyncConnection, tenant_id: str, object_type: str) -> int:
        """Records of a type, cached for a minute (a plan hint: roughly right is enough)."""
        sizes = self._type_sizes
        hit = sizes.get((tenant_id, object_type))
        if hit and hit[0] > time.monotonic():
            return hit[1]
        n = await self._count(conn, [R.c.tenant_id == tenant_id, R.c.object_type == object_type])
        sizes[(tenant_id, object_type)] = (time.monotonic() + SIZE_TTL_SECONDS, n)
        return n

    async def _base(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        object_type: str,
        criteria: FilterGroup | None,
        rid: Any = R.c.record_id,
    ) -> list[Any]:
        base = [R.c.tenant_id == tenant_id, R.c.object_type == object_type]
        if criteria is not None:
            base.append(await self._where(conn, tenant_id, object_type, criteria, rid))
        return base

    @staticmethod
    async def _count(conn: AsyncConnection, base: list[Any]) -> int:
        total = await conn.execute(sa.select(sa.func.count()).select_from(R).where(*base))
        return int(total.scalar_one())

    async def count(
        self, tenant_id: str, object_type: str, criteria: FilterGroup | None = None
    ) -> int:
        check_tenant(tenant_id)
        if criteria is not None:
            refuse_enrollment_filters(criteria)
        async with self.read() as conn:
            await self.schema(conn, tenant_id, object_type)
            if criteria is not None and needs_python(criteria):
                return len(await self._python_matches(conn, tenant_id, object_type, criteria))
            base = await self._base(conn, tenant_id, object_type, criteria)
            return await self._count_matches(conn, tenant_id, object_type, criteria, base)

    async def _python_matches(
        self, conn: AsyncConnection, tenant_id: str, object_type: str, criteria: FilterGroup
    ) -> list[Record]:
        """Slow path for operators without a SQL form (see sql_filters): a full scan."""
        match = compile_group(criteria, "criteria")
        scopes = _scope_keys(criteria)
        now = self.now()
        out = []
        rows = await conn.execute(
            sa.select(R)
            .where(
                R.c.tenant_id == tenant_id,
                R.c.object_type == object_type,
            )
            .order_by(R.c.created_at, R.c.record_id)
        )
        for row in rows.all():
            assoc = {}
            for key, (ot, label) in scopes.items():
                links = await self.linked_ids(
                    conn, tenant_id, object_type, row.record_id, ot, label
                )
                got = await self.fetch(conn, tenant_id, ot, links)
                assoc[key] = [dict(r.properties or {}) for r in got.values()]
            if match(dict(row.properties or {}), now, assoc):
                out.append(self.to_record(row))
        return out


# SQLite keeps no value-frequency statistics, so it can't tell "email = x" (one match: look the
# matches up by primary key and sort them) from "lifecyclestage = lead" (12% of 100k: walk the
# records in creation order until the page is full). The count, which search needs anyway, and
# the type's size tell us (see SearchMixin._walk); SQLite's unary "+" (a no-op on the value)
# takes an index out of the planner's hands.
#
# Walking reads about size * rows_needed / matches index entries; looking matches up reads and
# sorts `matches` whole rows, measured ~8x dearer per row (bench/records_bench.py data, 100k
# contacts: 281 matches -> look up 0.7 ms vs walk 3.8 ms; 1009 -> 2.7 ms vs 0.8 ms).
WALK_COST_RATIO = 8
SIZE_TTL_SECONDS = 60.0


def _noindex(col: Any) -> Any:
    return UnaryExpression(col, operator=operators.custom_op("+"), type_=col.type)


def _python_sort(records: list[Record], schema: Schema, sort: str) -> list[Record]:
    """The SQL path's order (values ascending/descending, no value last) for the slow path."""
    desc, name = sort.startswith("-"), sort.lstrip("-")
    prop = schema.get(name, "sort")

    def key(r: Record) -> Any:
        v = r.properties.get(name)
        if isinstance(v, list):
            v = min(v) if v else None
        if prop.type == PropertyType.NUMBER:
            v = as_number(v)
        elif prop.type in (PropertyType.DATE, PropertyType.DATETIME):
            when = as_datetime(v)
            v = when.timestamp() if when else None
        elif v is not None:
            v = as_text(v)
        return v

    known = sorted((r for r in records if key(r) is not None), key=key, reverse=desc)
    return known + [r for r in records if key(r) is None]


def _next(offset: int, limit: int, total: int) -> str:
    if offset + limit >= total:
        return ""
    return base64.urlsafe_b64encode(f"o:{offset + limit}".encode()).decode()


def _scope_types(group: FilterGroup) -> set[str]:
    out = {f.association.object_type for f in group.filters if f.association}
    for g in group.groups:
        out |= _scope_types(g)
    return out


def _scope_keys(group: FilterGroup) -> dict[str, tuple[str, str]]:
    from crmflow.criteria.evaluate import association_key

    out = {
        association_key(f.association.object_type, f.association.label): (
            f.association.object_type,
            f.association.label,
        )
        for f in group.filters
        if f.association
    }
    for g in group.groups:
        out |= _scope_keys(g)
    return out
